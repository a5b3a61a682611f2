package optout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/subjects"
)

func TestKeywordAction(t *testing.T) {
	t.Parallel()
	for content, want := range map[string]Action{
		"STOP": Stop, " stop\n": Stop, "StopAll": Stop, "unsubscribe": Stop, "CANCEL": Stop,
		"end": Stop, "Quit": Stop, "START": Start, "unstop": Start,
		"STOP please": None, "": None, "stopp": None, "Hi": None,
	} {
		require.Equal(t, want, KeywordAction(content), "%q", content)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	ctx := context.Background()
	l, err := Open(ctx, env.JS, Config{Bucket: env.Names.OptOutBucket()})
	require.NoError(t, err)

	has, err := l.Has(ctx, "+64211234567")
	require.NoError(t, err)
	require.False(t, has)

	require.NoError(t, l.Add(ctx, Record{Number: "64211234567", At: time.Now(), Keyword: "STOP"}))
	has, err = l.Has(ctx, "+64211234567")
	require.NoError(t, err)
	require.True(t, has, "the same digits with and without + are one number")

	require.NoError(t, l.Remove(ctx, "+64211234567"))
	require.NoError(t, l.Remove(ctx, "+64211234567"), "removing twice is fine")
	has, err = l.Has(ctx, "+64211234567")
	require.NoError(t, err)
	require.False(t, has)

	_, err = l.Has(ctx, "ACME")
	require.ErrorContains(t, err, "no digits")
	require.Equal(t, "2021", Digits("2021"))
	require.Empty(t, Digits("ACME"))

	// A number too long for a key is refused, never cut short, and the error
	// names no digit of it.
	long := "+" + strings.Repeat("64", 3000)
	_, err = l.Has(ctx, long)
	require.ErrorIs(t, err, subjects.ErrInvalidName)
	require.NotContains(t, err.Error(), "6464")
	require.ErrorIs(t, l.Add(ctx, Record{Number: long}), subjects.ErrInvalidName)
}
