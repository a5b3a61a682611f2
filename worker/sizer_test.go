package worker

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/ratelimit"
)

func TestSizerSize(t *testing.T) {
	adaptive := func(perSecond float64, burst int) Limiter {
		l, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: perSecond, Burst: burst})
		require.NoError(t, err)
		return l
	}
	unlimited, err := ratelimit.New(ratelimit.Config{PerSecond: math.Inf(1), Burst: 1})
	require.NoError(t, err)
	steady := func(s *sizer, d time.Duration) {
		for range 200 {
			s.observe(d)
		}
	}

	t.Run("NoMeasurementYetAllowsTheCeiling", func(t *testing.T) {
		require.Equal(t, 64, newSizer(4, 64, adaptive(200, 1)).size())
	})
	t.Run("AnUnlimitedRateAllowsTheCeiling", func(t *testing.T) {
		s := newSizer(4, 64, unlimited)
		steady(s, time.Millisecond)
		require.Equal(t, 64, s.size())
	})
	t.Run("SteadyLatency", func(t *testing.T) {
		// 200/s through 20 ms: burst 1 + 200 × 2 × 0.02 = 9.
		s := newSizer(4, 64, adaptive(200, 1))
		steady(s, 20*time.Millisecond)
		require.Equal(t, 9, s.size())
		// 2,000/s through 200 ms with the default burst: 50 + 2,000 × 0.4 = 850.
		s = newSizer(4, 2000, adaptive(2000, 50))
		steady(s, 200*time.Millisecond)
		require.Equal(t, 850, s.size())
	})
	t.Run("RoomForTheBurst", func(t *testing.T) {
		// A fast gateway: the burst the limiter may hand out at once decides.
		s := newSizer(4, 1000, adaptive(500, 50))
		steady(s, 100*time.Microsecond)
		require.Equal(t, 51, s.size())
	})
	t.Run("ASlowTailWidensTheLimit", func(t *testing.T) {
		even := newSizer(4, 1000, adaptive(5000, 1))
		steady(even, 3*time.Millisecond)
		tail := newSizer(4, 1000, adaptive(5000, 1))
		for i := range 200 {
			// The same 3 ms mean, but one answer in ten takes 21 ms.
			if i%10 == 9 {
				tail.observe(21 * time.Millisecond)
			} else {
				tail.observe(time.Millisecond)
			}
		}
		require.Equal(t, 31, even.size())
		require.Greater(t, tail.size(), 2*even.size())
	})
	t.Run("BetweenFloorAndCeiling", func(t *testing.T) {
		s := newSizer(4, 64, adaptive(1, 1))
		steady(s, time.Millisecond)
		require.Equal(t, 4, s.size())
		s = newSizer(4, 64, adaptive(5000, 50))
		steady(s, 100*time.Millisecond)
		require.Equal(t, 64, s.size())
	})
}
