// Command settingsdoc rewrites the settings table of docs/contract.md from the
// configuration's one table (config.Settings). `go generate ./config` runs it;
// config's TestContractSettingsTable fails while the file is out of date.
package main

import (
	"fmt"
	"os"

	"github.com/jetsms/jetsms/config"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: settingsdoc <path of docs/contract.md>")
		os.Exit(2)
	}
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "settingsdoc:", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := config.ReplaceTable(string(doc))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}
