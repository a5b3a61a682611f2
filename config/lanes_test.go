package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLaneConfigs(t *testing.T) {
	t.Parallel()

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		got := Default().LaneConfigs()
		require.Equal(t, []Lane{
			{Name: "priority", Priority: 0, Ambiguous: "resend", HoldFor: 10 * time.Minute, HoldThen: "resend"},
			{Name: "default", Priority: 1, Ambiguous: "resend", HoldFor: 10 * time.Minute, HoldThen: "resend"},
			{Name: "bulk", Priority: 2, Ambiguous: "fail", Marketing: true, MinShare: 0.1, HoldFor: 10 * time.Minute, HoldThen: "resend"},
		}, got)
	})

	t.Run("FromTheEnvironment", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{
			"JETSMS_GATEWAY_URL":    "sandbox",
			"JETSMS_LANES":          "otp,news",
			"JETSMS_LANE_MARKETING": "news",
			"JETSMS_LANE_AMBIGUOUS": "otp=hold, news=fail",
			"JETSMS_LANE_MIN_SHARE": "news=0.25",
			"JETSMS_LANE_MAX_AGE":   "news=2h",
			"JETSMS_LANE_HOLD_FOR":  "90s",
		}
		c, err := load(t, nil, env)
		require.NoError(t, err)
		got := c.LaneConfigs()
		require.Equal(t, Lane{Name: "otp", Ambiguous: "hold", HoldFor: 90 * time.Second, HoldThen: "resend"}, got[0])
		require.Equal(t, Lane{Name: "news", Priority: 1, Ambiguous: "fail", Marketing: true, MinShare: 0.25,
			MaxAge: 2 * time.Hour, HoldFor: 90 * time.Second, HoldThen: "resend"}, got[1])
	})

	t.Run("DefaultsForLanesNotConfiguredAreIgnored", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, map[string]string{"JETSMS_GATEWAY_URL": "sandbox", "JETSMS_LANES": "a,b"})
		require.NoError(t, err)
	})

	t.Run("Problems", func(t *testing.T) {
		t.Parallel()
		for env, want := range map[[2]string]string{
			{"JETSMS_LANE_AMBIGUOUS", "bulk=maybe"}:           `lane.ambiguous: lane "bulk": must be one of resend, fail, hold (got "bulk=maybe" from JETSMS_LANE_AMBIGUOUS)`,
			{"JETSMS_LANE_AMBIGUOUS", "bulk"}:                 `lane.ambiguous: entry "bulk" must be lane=value`,
			{"JETSMS_LANE_AMBIGUOUS", "blk=fail"}:             `lane.ambiguous: lane "blk" is not one of lanes (priority, default, bulk) (from JETSMS_LANE_AMBIGUOUS)`,
			{"JETSMS_LANE_MARKETING", "promo"}:                `lane.marketing: lane "promo" is not one of lanes`,
			{"JETSMS_LANE_MIN_SHARE", "bulk=1.5"}:             `lane.min_share: lane "bulk": share must be a fraction from 0 to below 1`,
			{"JETSMS_LANE_MIN_SHARE", "bulk=0.6,default=0.5"}: `lane.min_share: the shares add up to 1.1`,
			{"JETSMS_LANE_MAX_AGE", "bulk=soon"}:              `lane.max_age: lane "bulk": must be a duration`,
			{"JETSMS_LANE_HOLD_THEN", "hold"}:                 `lane.hold_then: must be one of resend, fail`,
		} {
			_, err := load(t, nil, map[string]string{"JETSMS_GATEWAY_URL": "sandbox", env[0]: env[1]})
			require.ErrorContains(t, err, want, env)
		}
	})
}
