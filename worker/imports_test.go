package worker

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsPointOneWay keeps the worker off the packages that use it or that it
// only needs an answer from: it reads campaign states (campaignstate), not the
// campaign package, and knows nothing of the process that wires it.
func TestImportsPointOneWay(t *testing.T) {
	forbidden := []string{
		"github.com/jetsms/jetsms/internal/campaign",
		"github.com/jetsms/jetsms/internal/app",
		"github.com/jetsms/jetsms/internal/resolve",
		"github.com/jetsms/jetsms/dlr",
		"github.com/jetsms/jetsms/cmd/",
	}
	files, err := os.ReadDir(".")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, f := range files {
		name := f.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		require.NoError(t, err)
		for _, imp := range file.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			for _, bad := range forbidden {
				require.False(t, path == bad || strings.HasPrefix(path, bad+"/") || strings.HasSuffix(bad, "/") && strings.HasPrefix(path, bad),
					"%s imports %s", name, path)
			}
		}
	}
}
