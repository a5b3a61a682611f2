package campaign

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/optout"
)

func TestEstimate(t *testing.T) {
	t.Parallel()

	file := "destination,name\n" +
		"+64211234501,Ann\n" +
		"+64211234502,Zoë 🎉\n" + // UCS-2
		"021234567,Bad\n" + // a local number
		"+64211234504," + strings.Repeat("x", 200) + "\n" + // two GSM-7 segments
		"+64211234505,Eve\n" // opted out

	t.Run("CountsSegmentsSuppressedAndCost", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		list, err := optout.Open(t.Context(), b.env.JS, optout.Config{Bucket: b.env.Names.OptOutBucket()})
		require.NoError(t, err)
		require.NoError(t, list.Add(t.Context(), optout.Record{Number: "+64211234505", At: time.Now()}))

		var bad []*RowError
		est, err := EstimateFile(t.Context(), spec("spring"), strings.NewReader(file),
			EstimateConfig{OptOuts: list, PricePerSegment: 0.05},
			WithBadRows(func(e *RowError) { bad = append(bad, e) }))
		require.NoError(t, err)
		require.Equal(t, Totals{
			Rows: 5, Jobs: 4, BadRows: 1, Segments: 5,
			GSM7: EncodingTotals{Jobs: 3, Segments: 4},
			UCS2: EncodingTotals{Jobs: 1, Segments: 1},
		}, est.Totals)
		require.Equal(t, 1, est.Suppressed)
		require.Equal(t, 1, est.SuppressedSegments)
		require.Equal(t, 4, est.ChargedSegments)
		require.InDelta(t, 0.20, est.Cost, 1e-9)
		require.Len(t, bad, 1)
		require.Equal(t, 4, bad[0].Line)

		// A dry run sends nothing and leaves no record.
		require.Empty(t, b.stored(t, "bulk", "spring"))
		_, _, err = b.store.Get(t.Context(), "spring")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("WithoutAListCountsNoSuppression", func(t *testing.T) {
		t.Parallel()
		est, err := EstimateFile(t.Context(), spec("spring"), strings.NewReader(file), EstimateConfig{PricePerSegment: 1})
		require.NoError(t, err)
		require.Equal(t, -1, est.Suppressed)
		require.Equal(t, 5, est.ChargedSegments)
		require.InDelta(t, 5.0, est.Cost, 1e-9)
	})

	t.Run("RefusesANegativePrice", func(t *testing.T) {
		t.Parallel()
		_, err := EstimateFile(context.Background(), spec("spring"), strings.NewReader(file), EstimateConfig{PricePerSegment: -1})
		require.ErrorIs(t, err, ErrInvalidOption)
	})
}

// TestSendRecordsItsEstimate: a real send keeps what its publishing pass counted
// and the price in the record, and the record's Estimate agrees with a dry run's
// of the same file but for the opt-outs, which a send does not look up.
func TestSendRecordsItsEstimate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	file := "destination,name\n" +
		"+64211234501,Ann\n" +
		"+64211234502,Zoë 🎉\n" +
		"021234567,Bad\n" +
		"+64211234504," + strings.Repeat("x", 200) + "\n"
	dry, err := EstimateFile(t.Context(), spec("spring"), strings.NewReader(file), EstimateConfig{PricePerSegment: 0.05})
	require.NoError(t, err)

	p := b.publisher(t, func(c *PublisherConfig) { c.PricePerSegment = 0.05 })
	res, err := p.Send(t.Context(), spec("spring"), strings.NewReader(file))
	require.NoError(t, err)
	rec, _, err := b.store.Get(t.Context(), "spring")
	require.NoError(t, err)
	require.Equal(t, res.Record.Totals, rec.Totals)
	got := rec.Estimate()
	require.Equal(t, dry.Totals, got.Totals)
	require.Equal(t, -1, got.Suppressed)
	require.Equal(t, 4, got.ChargedSegments)
	require.InDelta(t, 0.05, got.PricePerSegment, 1e-12)
	require.InDelta(t, dry.Cost, got.Cost, 1e-9)
	require.InDelta(t, 0.20, got.Cost, 1e-9)

	_, err = NewPublisher(PublisherConfig{Names: b.env.Names, Store: b.store, PricePerSegment: -1}, b.env.JS, nil)
	require.Error(t, err)
}
