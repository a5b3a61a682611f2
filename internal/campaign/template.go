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
	// Checked before the first row: what could make one row's message unbounded
	// in time or memory whatever the row holds.
	for _, tr := range t.Templates() {
		if tr.Tree == nil || tr.Root == nil {
			continue
		}
		if tr.Name() != t.Name() {
			return nil, fmt.Errorf("%w: {{define}} and {{block}} are not allowed: a campaign message is one template", ErrInvalidTemplate)
		}
		if err := checkNodes(tr.Root); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidTemplate, err)
		}
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

// execute writes the message for one row, at most limit bytes of it: past that
// the rendering is stopped and the error wraps errTooLong.
func (t *Template) execute(w io.Writer, row map[string]string, limit int) error {
	lw := &limitWriter{w: w, left: limit}
	err := t.tmpl.Execute(lw, row)
	if lw.over {
		return fmt.Errorf("%w: over %d bytes (the content limit and a margin); rendering stopped", errTooLong, limit)
	}
	return err
}

// errTooLong: a row's message grew past its bound while it was rendered.
var errTooLong = errors.New("message too long")

// limitWriter passes on at most left bytes, then fails every write.
type limitWriter struct {
	w    io.Writer
	left int
	over bool
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.left {
		l.over = true
		return 0, errTooLong
	}
	l.left -= len(p)
	return l.w.Write(p)
}

// checkNodes refuses what a template could use to run unbounded before a single
// byte is written: a range over anything but a row field (a number, {{range
// 100000000}}, loops that long whatever the output bound), a template call
// (recursion), and printf with a width or precision of more than three digits, a
// '*' width, or a format that is not a constant (fmt allocates the whole padding
// before it writes).
func checkNodes(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Nodes {
			if err := checkNodes(c); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		return checkNodes(n.Pipe)
	case *parse.PipeNode:
		if n == nil {
			return nil
		}
		for _, c := range n.Cmds {
			if err := checkNodes(c); err != nil {
				return err
			}
		}
	case *parse.CommandNode:
		if len(n.Args) > 0 {
			if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "printf" {
				if err := checkPrintf(n); err != nil {
					return err
				}
			}
		}
		for _, a := range n.Args {
			if err := checkNodes(a); err != nil {
				return err
			}
		}
	case *parse.IfNode:
		return checkBranch(&n.BranchNode)
	case *parse.WithNode:
		return checkBranch(&n.BranchNode)
	case *parse.RangeNode:
		if !rowFieldPipe(n.Pipe) {
			return fmt.Errorf("line %d: {{range}} may only range over a row's field, e.g. {{range .items}}; found {{range %s}}",
				n.Line, n.Pipe)
		}
		return checkBranch(&n.BranchNode)
	case *parse.TemplateNode:
		return fmt.Errorf("line %d: {{template %q}} is not allowed: a campaign message is one template", n.Line, n.Name)
	}
	return nil
}

func checkBranch(b *parse.BranchNode) error {
	for _, c := range []parse.Node{b.Pipe, b.List, b.ElseList} {
		if err := checkNodes(c); err != nil {
			return err
		}
	}
	return nil
}

// rowFieldPipe reports whether p is one field of dot, such as .items.
func rowFieldPipe(p *parse.PipeNode) bool {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	_, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	return ok
}

// checkPrintf checks a printf call's format: a constant whose widths and
// precisions have at most three digits, and no '*'.
func checkPrintf(c *parse.CommandNode) error {
	if len(c.Args) < 2 {
		return nil
	}
	s, ok := c.Args[1].(*parse.StringNode)
	if !ok {
		return fmt.Errorf("printf: the format must be a constant string, not %s", c.Args[1])
	}
	f := s.Text
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			continue
		}
		digits := 0
		for i++; i < len(f); i++ {
			c := f[i]
			switch {
			case c == '*':
				return fmt.Errorf("printf: format %q: a '*' width or precision is not allowed", f)
			case c >= '0' && c <= '9':
				digits++
				if digits > 3 {
					return fmt.Errorf("printf: format %q: widths and precisions may have at most 3 digits", f)
				}
				continue
			case c == '.' || c == '+' || c == '-' || c == ' ' || c == '#' || c == '[' || c == ']':
				digits = 0
				continue
			}
			break
		}
	}
	return nil
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
