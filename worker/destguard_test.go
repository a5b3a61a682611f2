package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

// TestDestGuardErrorsNameNoNumber: the guard's errors reach a warning log line,
// which must not carry the destination.
func TestDestGuardErrorsNameNoNumber(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	ctx := context.Background()
	g := newDestGuard(env.JS, env.Names, DestinationLimit{Max: 1, Window: time.Hour})
	const number = "+64219998877"
	wait, err := g.take(ctx, number, time.Now())
	require.NoError(t, err)
	require.Zero(t, wait)

	// The bucket goes away under the guard: every count now fails.
	require.NoError(t, env.JS.DeleteKeyValue(ctx, env.Names.DestinationBucket()))
	_, err = g.take(ctx, number, time.Now())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "64219998877")

	// A number too long for a key is refused, without the number.
	long := "+" + strings.Repeat("64", 2000)
	_, err = newDestGuard(env.JS, env.Names, DestinationLimit{Max: 1, Window: time.Hour}).take(ctx, long, time.Now())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "6464")
}
