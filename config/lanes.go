package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jetsms/jetsms/worker"
)

// The ambiguity policies of lane.ambiguous: what a lane does with a job whose
// last submission's outcome is unknown (a timeout or reset after the request was
// written, or a crash between sending and recording).
const (
	// AmbiguousResend sends it again; every later event carries duplicate_risk.
	AmbiguousResend = worker.AmbiguousResend
	// AmbiguousFail ends it failed with error outcome_unknown; it is never resent.
	AmbiguousFail = worker.AmbiguousFail
	// AmbiguousHold waits lane.hold_for for a receipt that shows it was sent, then
	// does what lane.hold_then says.
	AmbiguousHold = worker.AmbiguousHold
)

// Defaults of the lane options.
const (
	HoldForDefault  = worker.HoldForDefault
	HoldThenDefault = AmbiguousResend
)

// LaneOptions are per-lane settings, each a list of lane=value pairs (marketing is
// a list of lane names). A lane not named takes the default.
type LaneOptions struct {
	// Marketing lanes' jobs to an opted-out number end suppressed. Default: bulk.
	Marketing []string `yaml:"marketing"`
	// Ambiguous is each lane's ambiguity policy; default resend, bulk=fail.
	Ambiguous []string `yaml:"ambiguous"`
	// MinShare is the fraction of the rate a lane gets while it has work, even
	// when higher lanes have work too; default bulk=0.1.
	MinShare []string `yaml:"min_share"`
	// MaxAge is how old (since it was published) a lane's job may be when it is
	// taken; an older one ends expired. Default: no limit.
	MaxAge []string `yaml:"max_age"`
	// HoldFor is how long the hold policy waits for a receipt.
	HoldFor time.Duration `yaml:"hold_for"`
	// HoldThen is what the hold policy does when none came: resend or fail.
	HoldThen string `yaml:"hold_then"`
	// Broadcast lanes gather jobs with identical content and options into one
	// REST v1 broadcast request (gateway.api v1 only).
	Broadcast []string `yaml:"broadcast"`
}

// LaneOptionsDefault returns the default lane options.
func LaneOptionsDefault() LaneOptions {
	return LaneOptions{
		Marketing: []string{"bulk"},
		Ambiguous: []string{"bulk=" + AmbiguousFail},
		MinShare:  []string{"bulk=0.1"},
		MaxAge:    []string{},
		HoldFor:   HoldForDefault,
		HoldThen:  HoldThenDefault,
		Broadcast: []string{},
	}
}

// Lane is one lane with its options resolved.
type Lane struct {
	// Name is the lane's subject token.
	Name string
	// Priority is 0 for the highest lane, counting down the list.
	Priority  int
	Marketing bool
	Broadcast bool
	Ambiguous string
	MinShare  float64
	MaxAge    time.Duration
	HoldFor   time.Duration
	HoldThen  string
}

// LaneConfigs returns the configured lanes, highest priority first, with their
// options. Options naming lanes that are not configured are ignored (Validate
// reports them when they were set, not defaulted). The Config must be valid.
func (c Config) LaneConfigs() []Lane {
	out := make([]Lane, len(c.Lanes))
	for i, name := range c.Lanes {
		out[i] = Lane{
			Name: name, Priority: i, Ambiguous: AmbiguousResend,
			Marketing: slices.Contains(c.Lane.Marketing, name),
			Broadcast: slices.Contains(c.Lane.Broadcast, name),
			HoldFor:   c.Lane.HoldFor, HoldThen: c.Lane.HoldThen,
		}
	}
	find := func(name string) *Lane {
		for i := range out {
			if out[i].Name == name {
				return &out[i]
			}
		}
		return nil
	}
	for _, p := range c.Lane.Ambiguous {
		if name, v, ok := strings.Cut(p, "="); ok && find(strings.TrimSpace(name)) != nil {
			find(strings.TrimSpace(name)).Ambiguous = strings.TrimSpace(v)
		}
	}
	for _, p := range c.Lane.MinShare {
		if name, v, ok := strings.Cut(p, "="); ok && find(strings.TrimSpace(name)) != nil {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			find(strings.TrimSpace(name)).MinShare = f
		}
	}
	for _, p := range c.Lane.MaxAge {
		if name, v, ok := strings.Cut(p, "="); ok && find(strings.TrimSpace(name)) != nil {
			d, _ := parseDuration(v)
			find(strings.TrimSpace(name)).MaxAge = d
		}
	}
	return out
}

// lanePairs checks a list of lane=value pairs with valueRule.
func lanePairs(valueRule func(string) error) rule[[]string] {
	return func(pairs []string) error {
		seen := map[string]bool{}
		for _, p := range pairs {
			name, v, ok := strings.Cut(p, "=")
			name, v = strings.TrimSpace(name), strings.TrimSpace(v)
			if !ok || name == "" {
				return fmt.Errorf("entry %q must be lane=value", p)
			}
			if seen[name] {
				return fmt.Errorf("lane %q is given twice", name)
			}
			seen[name] = true
			if err := valueRule(v); err != nil {
				return fmt.Errorf("lane %q: %w", name, err)
			}
		}
		return nil
	}
}

func ambiguousPolicy(v string) error {
	return oneOf(AmbiguousResend, AmbiguousFail, AmbiguousHold)(v)
}

func shareFraction(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f < 1) {
		return errors.New("share must be a fraction from 0 to below 1, e.g. 0.1")
	}
	return nil
}

func laneMaxAge(v string) error {
	d, err := parseDuration(v)
	if err != nil {
		return err
	}
	return positive(d)
}

// laneProblems checks the lane options against the lanes: every lane named must
// be configured (for options set, not defaulted), and the minimum shares must
// leave room for the rest.
func (c *Config) laneProblems(from map[string]origin) []error {
	var errs []error
	known := func(name string) bool { return slices.Contains(c.Lanes, name) }
	check := func(setting string, names []string) {
		if _, set := from[setting]; !set {
			return
		}
		for _, n := range names {
			if !known(n) {
				errs = append(errs, fmt.Errorf("%s: lane %q is not one of lanes (%s) (from %s)",
					setting, n, strings.Join(c.Lanes, ", "), from[setting].source))
			}
		}
	}
	pairNames := func(pairs []string) []string {
		var out []string
		for _, p := range pairs {
			name, _, _ := strings.Cut(p, "=")
			out = append(out, strings.TrimSpace(name))
		}
		return out
	}
	check("lane.marketing", c.Lane.Marketing)
	check("lane.broadcast", c.Lane.Broadcast)
	check("lane.ambiguous", pairNames(c.Lane.Ambiguous))
	check("lane.min_share", pairNames(c.Lane.MinShare))
	check("lane.max_age", pairNames(c.Lane.MaxAge))
	total := 0.0
	for _, l := range c.LaneConfigs() {
		total += l.MinShare
	}
	if total >= 1 {
		errs = append(errs, fmt.Errorf("lane.min_share: the shares add up to %g; they must leave part of the rate to the lanes' priority order (below 1)", total))
	}
	return errs
}
