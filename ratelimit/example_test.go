package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/jetsms/jetsms/ratelimit"
)

// The scheduler's turn: pick a lane, pace the job's segments, count them.
func ExampleLaneShares() {
	shares, err := ratelimit.NewLaneShares([]ratelimit.LaneShare{
		{Name: "priority"},
		{Name: "normal", MinShare: 0.2},
		{Name: "bulk", MinShare: 0.1},
	})
	if err != nil {
		panic(err)
	}
	queued := []int{100, 100, 100} // jobs waiting per lane, one segment each
	got := make([]int, 3)
	for range 100 {
		i, ok := shares.Pick(func(i int) bool { return queued[i] > 0 })
		if !ok {
			break
		}
		queued[i]--
		// Here the worker would call limiter.Wait(ctx, segments) and submit.
		shares.Took(i, 1)
		got[i]++
	}
	fmt.Println(got)
	// Output: [70 20 10]
}

// The gateway answered 429 with Retry-After: 2: every taker pauses, then the rate
// climbs back from half the ceiling.
func ExampleAdaptive_Slow() {
	lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{
		PerSecond: 50, Burst: 50,
		OnChange: func(c ratelimit.Change) {
			fmt.Printf("%s: %.0f/s of %.0f/s\n", c.Reason, c.PerSecond, c.Ceiling)
		},
	})
	if err != nil {
		panic(err)
	}
	lim.Slow(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	fmt.Println(lim.Wait(ctx, 1))
	// Output:
	// slowed: 25/s of 50/s
	// context deadline exceeded
}
