package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireUsage checks that text is the program's usage, naming every command.
func requireUsage(t *testing.T, text string) {
	t.Helper()
	require.Contains(t, text, "Usage: jetsms <command> [flags]")
	for _, c := range commands() {
		require.Regexp(t, `(?m)^  `+c.name+` +`+regexp.QuoteMeta(c.summary)+`$`, text)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()

	t.Run("UnknownCommandExitsTwoWithUsage", func(t *testing.T) {
		t.Parallel()
		// A process, so the exit code is the one main hands to the system.
		p := startJetsms(t, nil, "nope")
		require.Equal(t, 2, p.wait(t, exitTimeout))
		require.Empty(t, p.stdout.String())
		stderr := strings.Join(p.output(), "\n")
		require.Contains(t, stderr, `jetsms: unknown command "nope"`)
		requireUsage(t, stderr)
	})

	t.Run("NoCommandExitsTwoWithUsage", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t)
		require.Equal(t, 2, res.code)
		requireUsage(t, res.stderr)
	})

	t.Run("HelpExitsZeroWithUsage", func(t *testing.T) {
		t.Parallel()
		for _, arg := range []string{"help", "-h", "--help"} {
			res := runJetsms(t, arg)
			require.Equal(t, 0, res.code, arg)
			requireUsage(t, res.stderr)
		}
	})

	t.Run("CommandHelpListsEverySetting", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "worker", "-h")
		require.Equal(t, 0, res.code)
		require.Contains(t, res.stderr, "-rate.per_second")
		require.Contains(t, res.stderr, "env JETSMS_RATE_PER_SECOND")
		require.Contains(t, res.stderr, "-config file")
	})

	t.Run("CommandHelpShowsItsOwnFlagsBeforeTheSettings", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "send", "-h")
		require.Equal(t, 0, res.code)
		own := strings.Index(res.stderr, "\n  -wait\n")
		heading := strings.Index(res.stderr, "\nSettings (")
		setting := strings.Index(res.stderr, "\n  -rate.per_second string\n")
		require.True(t, own > 0 && heading > own && setting > heading,
			"the command's flags, then the heading, then the settings:\n%s", res.stderr)
		require.Equal(t, 1, strings.Count(res.stderr, "-rate.per_second string"), "each flag once")
	})

	t.Run("VersionPrintsVersion", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "version")
		require.Equal(t, 0, res.code)
		require.Regexp(t, `^jetsms \S+\n$`, res.stdout)
		require.Empty(t, res.stderr)
	})
}
