package ratelimit

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	t.Parallel()

	testLimiterConformance(t, limiterImpl{
		features: limiterFeatures{Unlimited: true},
		new: func(t *testing.T, perSecond float64, burst int) waiter {
			l, err := New(Config{PerSecond: perSecond, Burst: burst})
			require.NoError(t, err)
			return l
		},
	})

	t.Run("BadConfigNamesTheSetting", func(t *testing.T) {
		t.Parallel()
		_, err := New(Config{PerSecond: 0, Burst: 1})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, "rate.per_second")
		_, err = New(Config{PerSecond: 1, Burst: 0})
		require.ErrorContains(t, err, "rate.burst")
		_, err = New(Config{PerSecond: math.NaN(), Burst: 1})
		require.ErrorContains(t, err, "rate.per_second")
	})
}
