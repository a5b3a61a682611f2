package config

import (
	"errors"
	"strings"
)

//go:generate go run ../internal/cmd/settingsdoc ../docs/contract.md

// The markers around the generated settings table in docs/contract.md.
const (
	TableBegin = "<!-- settings table: generated from config.Settings() by `go generate ./config`; do not edit -->"
	TableEnd   = "<!-- end of settings table -->"
)

// SettingsTable renders Settings as the Markdown table of docs/contract.md:
// setting, environment variable, default and what it does.
func SettingsTable() string {
	var b strings.Builder
	b.WriteString("| setting | environment | default | what it does |\n|---|---|---|---|\n")
	for _, s := range Settings() {
		def := "empty"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		b.WriteString("| `" + s.Name + "` | `" + s.Env + "` | " + def + " | " + cell(s.Help) + " |\n")
	}
	return b.String()
}

// cell escapes text for one Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// ReplaceTable returns doc with the text between TableBegin and TableEnd
// replaced by SettingsTable.
func ReplaceTable(doc string) (string, error) {
	before, rest, ok := strings.Cut(doc, TableBegin+"\n")
	if !ok {
		return "", errors.New("settings table: begin marker not found")
	}
	_, after, ok := strings.Cut(rest, TableEnd)
	if !ok {
		return "", errors.New("settings table: end marker not found")
	}
	return before + TableBegin + "\n" + SettingsTable() + TableEnd + after, nil
}
