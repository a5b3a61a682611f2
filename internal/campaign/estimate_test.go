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
