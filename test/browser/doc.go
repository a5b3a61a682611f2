// Package browser drives the operators' console (internal/console) in headless
// Chromium against a running `jetsms run`: the overview shows a published backlog,
// a campaign's progress moves and its pause button holds it, a dead letter
// replayed from the page is sent once, and an action without credentials or
// without the session token is refused. It skips, saying so, when no Chromium is
// found (CHROMIUM=path, or chromium / chromium-browser / google-chrome on PATH).
// With CONSOLE_SCREENSHOTS=dir it writes a 1280×800 screenshot of each page there.
package browser
