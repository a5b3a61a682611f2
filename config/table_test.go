package config

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestContractSettingsTable fails, with the difference, when docs/contract.md's
// settings table is not the one config.Settings() renders. `go generate ./config`
// (or `make docs`) rewrites it.
func TestContractSettingsTable(t *testing.T) {
	doc, err := os.ReadFile("../docs/contract.md")
	require.NoError(t, err)
	want, err := ReplaceTable(string(doc))
	require.NoError(t, err)
	require.Equal(t, want, string(doc), "docs/contract.md's settings table is out of date: run go generate ./config")
}

func TestReplaceTable(t *testing.T) {
	t.Parallel()
	out, err := ReplaceTable("intro\n" + TableBegin + "\nold rows\n" + TableEnd + "\nafter\n")
	require.NoError(t, err)
	require.Equal(t, "intro\n"+TableBegin+"\n"+SettingsTable()+TableEnd+"\nafter\n", out)
	_, err = ReplaceTable("no markers")
	require.Error(t, err)
}
