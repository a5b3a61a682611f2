package campaign

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// ErrInvalidTemplate is the family of the errors ParseTemplate returns.
var ErrInvalidTemplate = errors.New("invalid template")

// Template is a campaign's message: Go text/template text executed with one row's
// columns as a map, {{.name}} giving the row's "name" column. It is strict: a
// column the template names that the file lacks is an error before any row is
// read, and a key missing at execution is an error for the row (missingkey=error).
// A Template is safe for concurrent use.
type Template struct {
	text   string
	tmpl   *template.Template
	fields []string // columns named as {{.column}} where dot is the row
	hash   string
}

// ParseTemplate parses text. It must be non-empty UTF-8 and valid text/template
// syntax; the error names what is wrong and wraps ErrInvalidTemplate.
func ParseTemplate(text string) (*Template, error) {
	if text == "" {
		return nil, fmt.Errorf("%w: must not be empty", ErrInvalidTemplate)
	}
	if !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidTemplate)
	}
	t, err := template.New("message").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
	}
	sum := sha256.Sum256([]byte(text))
	tp := &Template{text: text, tmpl: t, hash: "sha256:" + hex.EncodeToString(sum[:])}
	if tree := t.Tree; tree != nil {
		tp.fields = rowFields(tree.Root, nil)
	}
	return tp, nil
}

// Text returns the template as written.
func (t *Template) Text() string { return t.text }

// Hash returns "sha256:" and the hex SHA-256 of the text; the campaign record keeps
// it, so that a re-run with another template is refused.
func (t *Template) Hash() string { return t.hash }

// Columns returns the columns the template names as {{.column}}, in order of first
// use.
func (t *Template) Columns() []string { return slices.Clone(t.fields) }

// execute writes the message for one row.
func (t *Template) execute(w io.Writer, row map[string]string) error {
	return t.tmpl.Execute(w, row)
}

// rowFields collects the first identifier of every field reference made while dot
// is still the row: not inside the body of a with or range, where dot is something
// else.
func rowFields(n parse.Node, out []string) []string {
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return out
		}
		for _, c := range n.Nodes {
			out = rowFields(c, out)
		}
	case *parse.ActionNode:
		out = rowFields(n.Pipe, out)
	case *parse.PipeNode:
		if n == nil {
			return out
		}
		for _, c := range n.Cmds {
			out = rowFields(c, out)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			out = rowFields(a, out)
		}
	case *parse.FieldNode:
		if len(n.Ident) > 0 {
			add(n.Ident[0])
		}
	case *parse.ChainNode:
		out = rowFields(n.Node, out)
	case *parse.IfNode:
		out = rowFields(n.Pipe, out)
		out = rowFields(n.List, out)
		out = rowFields(n.ElseList, out)
	case *parse.WithNode:
		out = rowFields(n.Pipe, out)
		out = rowFields(n.ElseList, out) // the else branch keeps the row as dot
	case *parse.RangeNode:
		out = rowFields(n.Pipe, out)
		out = rowFields(n.ElseList, out)
	case *parse.TemplateNode:
		out = rowFields(n.Pipe, out)
	}
	return out
}
