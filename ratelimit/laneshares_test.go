package ratelimit

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLaneShares(t *testing.T) {
	t.Parallel()

	const priority, normal, bulk = 0, 1, 2
	setup := func(t *testing.T) *LaneShares {
		t.Helper()
		s, err := NewLaneShares([]LaneShare{{Name: "priority"}, {Name: "normal", MinShare: 0.25}, {Name: "bulk", MinShare: 0.10}})
		require.NoError(t, err)
		return s
	}
	// run picks n times with the lanes in work having work, each pick taking
	// size(pick number) tokens; it returns the tokens each lane got and the longest
	// run of consecutive picks of each lane.
	run := func(s *LaneShares, picks int, work []bool, size func(k int) int) (tokens, longest []int) {
		tokens, longest = make([]int, len(work)), make([]int, len(work))
		last, streak := -1, 0
		for k := range picks {
			i, ok := s.Pick(func(i int) bool { return work[i] })
			if !ok {
				break
			}
			n := size(k)
			s.Took(i, n)
			tokens[i] += n
			if i == last {
				streak++
			} else {
				last, streak = i, 1
			}
			longest[i] = max(longest[i], streak)
		}
		return tokens, longest
	}
	one := func(int) int { return 1 }
	// segments is a fixed, uneven mix of message sizes from 1 to 10 segments.
	segments := func(k int) int { return 1 + (k*7+k/3)%10 }
	all := []bool{true, true, true}

	t.Run("BackloggedLanesGetTheirMinimumAndTheTopLaneTheRest", func(t *testing.T) {
		t.Parallel()
		tokens, _ := run(setup(t), 10000, all, one)
		require.InEpsilon(t, 2500, tokens[normal], 0.05)
		require.InEpsilon(t, 1000, tokens[bulk], 0.05)
		require.InEpsilon(t, 6500, tokens[priority], 0.05)
		require.Equal(t, 10000, tokens[priority]+tokens[normal]+tokens[bulk])
	})

	t.Run("SharesCountTokensNotPicks", func(t *testing.T) {
		t.Parallel()
		tokens, _ := run(setup(t), 10000, all, segments)
		total := float64(tokens[priority] + tokens[normal] + tokens[bulk])
		require.InEpsilon(t, 0.25, float64(tokens[normal])/total, 0.05)
		require.InEpsilon(t, 0.10, float64(tokens[bulk])/total, 0.05)
		require.InEpsilon(t, 0.65, float64(tokens[priority])/total, 0.05)
	})

	t.Run("LoneLaneGetsEverything", func(t *testing.T) {
		t.Parallel()
		for lane := range 3 {
			work := make([]bool, 3)
			work[lane] = true
			tokens, _ := run(setup(t), 10000, work, one)
			require.Equal(t, 10000, tokens[lane], "lane %d", lane)
		}
	})

	t.Run("NoWorkNoPick", func(t *testing.T) {
		t.Parallel()
		_, ok := setup(t).Pick(func(int) bool { return false })
		require.False(t, ok)
	})

	t.Run("IdleLaneGivesItsShareBackAndDoesNotCatchUp", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		tokens, _ := run(s, 5000, all, one)
		require.InEpsilon(t, 500, tokens[bulk], 0.05)
		// Bulk idle: its share goes to the lane above the minimums.
		tokens, _ = run(s, 10000, []bool{true, true, false}, one)
		require.Zero(t, tokens[bulk])
		require.InEpsilon(t, 2500, tokens[normal], 0.05)
		require.InEpsilon(t, 7500, tokens[priority], 0.05)
		// Bulk back: its share again, without a rush to make up for the idle spell.
		tokens, longest := run(s, 10000, all, one)
		require.InEpsilon(t, 1000, tokens[bulk], 0.05)
		require.InEpsilon(t, 2500, tokens[normal], 0.05)
		require.Equal(t, 1, longest[bulk])
	})

	t.Run("LaneAloneForAWhileIsNotStarvedAfter", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		run(s, 10000, []bool{false, false, true}, one) // bulk alone, far above its share
		tokens, _ := run(s, 100, all, one)
		require.GreaterOrEqual(t, tokens[bulk], 9)
	})

	t.Run("LaneWithoutMinimumGetsOnlyWhatIsLeft", func(t *testing.T) {
		t.Parallel()
		s, err := NewLaneShares([]LaneShare{{Name: "priority", MinShare: 0.5}, {Name: "normal"}, {Name: "bulk", MinShare: 0.5}})
		require.NoError(t, err)
		tokens, _ := run(s, 10000, all, one)
		require.Zero(t, tokens[normal])
		require.InEpsilon(t, 5000, tokens[priority], 0.05)
		require.InEpsilon(t, 5000, tokens[bulk], 0.05)
	})

	t.Run("SameCallsSamePicks", func(t *testing.T) {
		t.Parallel()
		pick := func() []int {
			s := setup(t)
			var out []int
			for k := range 1000 {
				i, _ := s.Pick(func(i int) bool { return i != k%3 || k%5 == 0 })
				s.Took(i, segments(k))
				out = append(out, i)
			}
			return out
		}
		require.Equal(t, pick(), pick())
	})

	t.Run("TookIgnoresWhatIsOutOfRange", func(t *testing.T) {
		t.Parallel()
		s := setup(t)
		s.Took(-1, 1)
		s.Took(3, 1)
		s.Took(bulk, 0)
		tokens, _ := run(s, 10000, all, one)
		require.InEpsilon(t, 1000, tokens[bulk], 0.05)
		require.Equal(t, []LaneShare{{Name: "priority"}, {Name: "normal", MinShare: 0.25}, {Name: "bulk", MinShare: 0.10}}, s.Lanes())
	})

	t.Run("BadSharesNameTheLaneAndTheRule", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			lanes []LaneShare
			want  string
		}{
			{nil, "at least one lane"},
			{[]LaneShare{{Name: "a"}, {Name: "a"}}, `"a" appears twice`},
			{[]LaneShare{{Name: "a", MinShare: -0.1}}, `min share of "a" must be between 0 and 1`},
			{[]LaneShare{{Name: "a", MinShare: 1.5}}, `min share of "a" must be between 0 and 1`},
			{[]LaneShare{{Name: "a", MinShare: 0.6}, {Name: "b", MinShare: 0.6}}, "add up to 1.2"},
		} {
			_, err := NewLaneShares(tc.lanes)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		}
	})
}
