// jetsms console: confirmations, select-all, auto-refresh and the live events.
(function () {
  "use strict";
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
  document.querySelectorAll("input[data-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("input[name=" + box.getAttribute("data-all") + "]").forEach(function (b) { b.checked = box.checked; });
    });
  });
  // Pages with data-refresh reload themselves, unless the operator is typing or
  // has selected something.
  var every = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (every > 0) {
    setInterval(function () {
      var a = document.activeElement;
      if (a && (a.tagName === "INPUT" || a.tagName === "SELECT")) { return; }
      if (document.querySelector("input[type=checkbox]:checked")) { return; }
      window.location.reload();
    }, every * 1000);
  }
  var state = document.getElementById("livestate");
  if (state && window.EventSource) {
    var body = document.querySelector("#live tbody");
    var src = new EventSource(state.getAttribute("data-stream"));
    src.onopen = function () { state.textContent = "Live: waiting for events…"; };
    src.onerror = function () { state.textContent = "Disconnected; retrying…"; };
    var n = 0;
    src.onmessage = function (m) {
      var ev = JSON.parse(m.data), tr = document.createElement("tr");
      var detail = ev.kind === "inbound" ? ("id " + ev.id + (ev.reply_to ? " · reply to " + ev.reply_to : "")) : (ev.error || (ev.attempts ? "attempts " + ev.attempts : ""));
      [ev.at, ev.kind, ev.status || "", ev.job || "", ev.lane || "", ev.campaign || "", detail].forEach(function (v, i) {
        var td = document.createElement("td");
        if (i === 3 && v) {
          var a = document.createElement("a");
          a.href = "/console/jobs/" + encodeURIComponent(v);
          a.textContent = v;
          td.appendChild(a);
        } else {
          td.textContent = v;
        }
        if (i === 2 && v) { td.className = "st st-" + v; }
        tr.appendChild(td);
      });
      body.insertBefore(tr, body.firstChild);
      while (body.rows.length > 200) { body.deleteRow(body.rows.length - 1); }
      n++;
      state.textContent = "Live: " + n + " events";
    };
  }
})();
