package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them: every part
// of the process the stack runs must have stopped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
