package secret

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestSecret(t *testing.T) {
	t.Parallel()
	const value = "hunter2-very-secret"
	s := Secret(value)

	t.Run("NeverPrintsItsValue", func(t *testing.T) {
		t.Parallel()
		type holder struct {
			Password Secret `json:"password"`
		}
		b, err := json.Marshal(holder{Password: s})
		require.NoError(t, err)
		for _, out := range []string{
			fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s),
			fmt.Sprintf("%+v", holder{Password: s}), fmt.Sprintf("%#v", holder{Password: s}),
			string(b),
		} {
			require.NotContains(t, out, value)
			require.Contains(t, out, Redacted)
		}
	})

	t.Run("NeverReachesZap", func(t *testing.T) {
		t.Parallel()
		core, logs := observer.New(zap.DebugLevel)
		log := zap.New(core)
		log.Info("x", zap.Any("password", s), zap.Stringer("p2", s), zap.Reflect("p3", struct{ P Secret }{s}))
		for _, e := range logs.All() {
			for k, v := range e.ContextMap() {
				require.NotContains(t, fmt.Sprint(v), value, "field %s", k)
			}
		}
	})

	t.Run("RevealGivesTheValue", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, value, s.Reveal())
		require.True(t, s.IsSet())
		require.False(t, Secret("").IsSet())
		require.Equal(t, "", Secret("").String())
	})
}
