package campaign

import (
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTemplateChecks(t *testing.T) {
	t.Parallel()
	for tmpl, want := range map[string]string{
		"{{range 100000000}}xxxxxxxxxx{{end}}":                  "{{range}} may only range over a row's field",
		"{{range 1000000000000}}{{end}}":                        "{{range}} may only range over a row's field",
		"Hi {{if .name}}{{range $i := 5}}x{{end}}{{end}}":       "{{range}} may only range over a row's field",
		`{{define "a"}}{{template "a"}}{{end}}{{template "a"}}`: "not allowed",
		`{{define "a"}}x{{end}}Hi`:                              "{{define}} and {{block}} are not allowed",
		`{{template "x"}}`:                                      `{{template "x"}} is not allowed`,
		`{{printf "%01000000000d" 1}}`:                          "at most 3 digits",
		`{{printf "%.9999s" .name}}`:                            "at most 3 digits",
		`{{printf "%*d" 1000000000 1}}`:                         "'*' width",
		`{{printf .name 1}}`:                                    "the format must be a constant string",
	} {
		_, err := ParseTemplate(tmpl)
		require.ErrorIs(t, err, ErrInvalidTemplate, tmpl)
		require.Contains(t, err.Error(), want, tmpl)
	}
	for _, ok := range []string{"Hi {{.name}}", "{{range .name}}x{{end}}", `{{printf "%-10s|%3d" .name 7}}`, `{{with .name}}{{.}}{{end}}`} {
		_, err := ParseTemplate(ok)
		require.NoError(t, err, ok)
	}
}

func TestRowOutputIsBounded(t *testing.T) {
	t.Parallel()
	// Each field is within the row bound; the template repeats it past the
	// content limit and its margin.
	big := strings.Repeat("x", 20_000)
	file := "destination,a\n+64211234567," + big + "\n+64211234568,short\n"
	tmpl := strings.Repeat("{{.a}}", 10)
	jobs, bad := readAll(t, file, tmpl, ReaderConfig{})
	require.Len(t, jobs, 1)
	require.Len(t, bad, 1)
	require.Equal(t, 2, bad[0].Line)
	require.Contains(t, bad[0].Reason, "template: message too long: over 10496 bytes (the content limit and a margin); rendering stopped")
}

// repeatReader yields prefix, then n bytes of c, then suffix, without holding
// them: a file larger than memory, streamed.
type repeatReader struct {
	prefix, suffix string
	c              byte
	n              int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	switch {
	case r.prefix != "":
		k := copy(p, r.prefix)
		r.prefix = r.prefix[k:]
		return k, nil
	case r.n > 0:
		k := int(min(int64(len(p)), r.n))
		for i := range k {
			p[i] = r.c
		}
		r.n -= int64(k)
		return k, nil
	case r.suffix != "":
		k := copy(p, r.suffix)
		r.suffix = r.suffix[k:]
		return k, nil
	}
	return 0, io.EOF
}

func TestRowsAreBounded(t *testing.T) {
	t.Parallel()
	tp, err := ParseTemplate("Hi {{.name}}")
	require.NoError(t, err)
	for name, src := range map[string]io.Reader{
		// A 300 MB field on line 3.
		"OneLine": &repeatReader{prefix: "destination,name\n+64211234567,Ann\n+64211234568,", c: 'y', n: 300 << 20, suffix: "\n"},
		// A quoted field that never closes, of many short lines.
		"ManyLines": &repeatReader{prefix: "destination,name\n+64211234567,Ann\n+64211234568,\"", c: '\n', n: 300 << 20},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rd, err := NewReader(src, ReaderConfig{Campaign: "spring", Template: tp})
			require.NoError(t, err)
			row, err := rd.Next()
			require.NoError(t, err)
			require.Nil(t, row.Err)
			for {
				row, err = rd.Next()
				if err != nil || row.Err == nil {
					break
				}
			}
			require.ErrorIs(t, err, ErrInvalidFile)
			require.Contains(t, err.Error(), "line 3: the row is longer than 65536 bytes")
			require.Less(t, rd.Offset(), int64(1<<20), "reading stopped soon after the bound")
		})
	}
}
