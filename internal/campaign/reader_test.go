package campaign

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// readAll reads every row of file, returning the good rows' jobs and the bad rows.
func readAll(t *testing.T, file, tmpl string, cfg ReaderConfig) ([]job.Job, []RowError) {
	t.Helper()
	tp, err := ParseTemplate(tmpl)
	require.NoError(t, err)
	if cfg.Campaign == "" {
		cfg.Campaign = "spring"
	}
	cfg.Template = tp
	rd, err := NewReader(strings.NewReader(file), cfg)
	require.NoError(t, err)
	var jobs []job.Job
	var bad []RowError
	for {
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return jobs, bad
		}
		require.NoError(t, err)
		if row.Err != nil {
			bad = append(bad, *row.Err)
			continue
		}
		// What is published is what the worker decodes.
		var onWire job.Job
		require.NoError(t, json.Unmarshal(row.Data, &onWire))
		require.Equal(t, row.Job.ID, onWire.ID)
		require.Equal(t, row.Job.Content, onWire.Content)
		jobs = append(jobs, row.Job)
	}
}

func TestReader(t *testing.T) {
	t.Parallel()

	t.Run("MakesOneJobPerRowWithDerivedIDs", func(t *testing.T) {
		t.Parallel()
		file := "destination,name\n+64211234501,Ann\n+64211234502,Bob\n"
		jobs, bad := readAll(t, file, "Hi {{.name}}", ReaderConfig{})
		require.Empty(t, bad)
		require.Len(t, jobs, 2)
		require.Equal(t, "spring:1", jobs[0].ID)
		require.Equal(t, "+64211234501", jobs[0].Destination)
		require.Equal(t, "Hi Ann", jobs[0].Content)
		require.Equal(t, 1, jobs[0].Segments)
		require.Equal(t, job.GSM7, jobs[0].Encoding)
		require.Equal(t, "spring:2", jobs[1].ID)
		require.Equal(t, "Hi Bob", jobs[1].Content)

		// The same file gives the same ids again.
		again, _ := readAll(t, file, "Hi {{.name}}", ReaderConfig{})
		require.Equal(t, jobs[0].ID, again[0].ID)
		require.Equal(t, jobs[1].ID, again[1].ID)
	})

	t.Run("ReportsBadRowsByLineAndGoesOn", func(t *testing.T) {
		t.Parallel()
		file := "destination,msg\n" +
			"+64211234501,Hello Ann\n" + // line 2, row 1: good
			"0211234567,Hello Bob\n" + // line 3: a local number
			"+64211234503,\n" + // line 4: empty after templating
			"+64211234504,Hello \xffCat\n" + // line 5: not UTF-8
			"+64211234505\n" + // line 6: the msg column is missing
			"\"+64211234506\",\"two\nlines\"\n" + // lines 7-8, row 6: good
			"+64211234507,Last\n" // line 9, row 7: good
		jobs, bad := readAll(t, file, "{{.msg}}", ReaderConfig{})

		require.Len(t, jobs, 3)
		require.Equal(t, []string{"spring:1", "spring:6", "spring:7"}, []string{jobs[0].ID, jobs[1].ID, jobs[2].ID})
		require.Equal(t, "two\nlines", jobs[1].Content)

		require.Len(t, bad, 4)
		require.Equal(t, RowError{Line: 3, Row: 2,
			Reason: `destination: "0211234567" is a local number; use international format, e.g. +64211234567`}, bad[0])
		require.Equal(t, 4, bad[1].Line)
		require.Contains(t, bad[1].Reason, "content: empty after templating")
		require.Equal(t, 5, bad[2].Line)
		require.Equal(t, `column "msg": not valid UTF-8 (byte offset 6)`, bad[2].Reason)
		require.Equal(t, 6, bad[3].Line)
		require.Equal(t, `has 1 fields but the header has 2: column "msg" is missing`, bad[3].Reason)
		require.Equal(t, `line 3: destination: "0211234567" is a local number; use international format, e.g. +64211234567`, bad[0].Error())
	})

	t.Run("AppliesTheWorkersContentRules", func(t *testing.T) {
		t.Parallel()
		file := "destination,msg\n+64211234501," + strings.Repeat("x", 161) + "\n"
		_, bad := readAll(t, file, "{{.msg}}", ReaderConfig{MaxSegments: 1})
		require.Len(t, bad, 1)
		require.Contains(t, bad[0].Reason, "content: takes 2 segments")
	})

	t.Run("CountsUCS2Segments", func(t *testing.T) {
		t.Parallel()
		file := "destination,name\n+64211234501,Zoë 🎉\n"
		jobs, _ := readAll(t, file, "Kia ora {{.name}}", ReaderConfig{})
		require.Equal(t, job.UCS2, jobs[0].Encoding)
		require.Equal(t, 1, jobs[0].Segments)
	})

	t.Run("SetsTheScheduleUntilItHasPassed", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		at := now.Add(24 * time.Hour)
		jobs, bad := readAll(t, "destination\n+64211234501\n", "Hi", ReaderConfig{Schedule: &at, Now: clock})
		require.Empty(t, bad)
		require.True(t, at.Equal(*jobs[0].Scheduled))

		// A re-run after the schedule passed sends the rest at once.
		past := now.Add(-time.Hour)
		jobs, bad = readAll(t, "destination\n+64211234501\n", "Hi", ReaderConfig{Schedule: &past, Now: clock})
		require.Empty(t, bad)
		require.Nil(t, jobs[0].Scheduled)

		far := now.Add(90 * 24 * time.Hour)
		_, bad = readAll(t, "destination\n+64211234501\n", "Hi", ReaderConfig{Schedule: &far, Now: clock})
		require.Len(t, bad, 1)
		require.Contains(t, bad[0].Reason, "scheduled:")
		require.Contains(t, bad[0].Reason, "more than 60 days ahead")
	})

	t.Run("AcceptsAByteOrderMarkAndSpacesInTheHeader", func(t *testing.T) {
		t.Parallel()
		jobs, bad := readAll(t, "\uFEFFdestination , name\n+64211234501,Ann\n", "Hi {{.name}}", ReaderConfig{})
		require.Empty(t, bad)
		require.Equal(t, "Hi Ann", jobs[0].Content)
	})

	t.Run("RefusesAFileTheTemplateDoesNotFit", func(t *testing.T) {
		t.Parallel()
		tp, err := ParseTemplate("Hi {{.name}}")
		require.NoError(t, err)
		cases := map[string]string{
			"":                                      "the file is empty",
			"phone,name\n+64211234501,Ann\n":        `no "destination" column (columns: "phone", "name")`,
			"destination,first\n+64211234501,Ann\n": `the template uses column "name", which the header (line 1) lacks (columns: "destination", "first")`,
			"destination,name,name\n":               `column "name" appears twice (columns 2 and 3)`,
		}
		for file, want := range cases {
			_, err := NewReader(strings.NewReader(file), ReaderConfig{Campaign: "spring", Template: tp})
			require.ErrorIs(t, err, ErrInvalidFile, file)
			require.ErrorContains(t, err, want, file)
		}
	})

	t.Run("ColumnsInsideWithAndRangeAreNotRowColumns", func(t *testing.T) {
		t.Parallel()
		tp, err := ParseTemplate(`{{if .vip}}Dear {{.name}}{{else}}Hi{{end}}{{with .name}} ({{.}}){{end}}`)
		require.NoError(t, err)
		require.Equal(t, []string{"vip", "name"}, tp.Columns())
	})
}

func TestTemplate(t *testing.T) {
	t.Parallel()

	t.Run("RefusesBadTemplates", func(t *testing.T) {
		t.Parallel()
		for text, want := range map[string]string{
			"":           "must not be empty",
			"Hi {{.name": "unclosed action",
			"Hi \xff":    "not valid UTF-8",
		} {
			_, err := ParseTemplate(text)
			require.ErrorIs(t, err, ErrInvalidTemplate, text)
			require.ErrorContains(t, err, want, text)
		}
	})

	t.Run("HashesTheText", func(t *testing.T) {
		t.Parallel()
		a, _ := ParseTemplate("Hi {{.name}}")
		b, _ := ParseTemplate("Hi {{.name}}")
		c, _ := ParseTemplate("Hello {{.name}}")
		require.Equal(t, a.Hash(), b.Hash())
		require.NotEqual(t, a.Hash(), c.Hash())
		require.True(t, strings.HasPrefix(a.Hash(), "sha256:"))
	})
}

func TestJobID(t *testing.T) {
	t.Parallel()

	t.Run("RoundTrips", func(t *testing.T) {
		t.Parallel()
		id := JobID("spring-sale_2", 1234)
		require.Equal(t, "spring-sale_2:1234", id)
		require.NoError(t, job.CheckID(id))
		name, row, ok := ParseJobID(id)
		require.True(t, ok)
		require.Equal(t, "spring-sale_2", name)
		require.Equal(t, 1234, row)
	})

	t.Run("RefusesOtherIDs", func(t *testing.T) {
		t.Parallel()
		for _, id := range []string{"", "spring", "spring:", ":1", "spring:01", "spring:1x", "spr.ing:1", "order-1234-otp"} {
			_, _, ok := ParseJobID(id)
			require.False(t, ok, id)
		}
	})

	t.Run("ValidatesNames", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, ValidateName("Spring_2026-nz"))
		for _, name := range []string{"", "a.b", "a:b", "a b", strings.Repeat("x", NameMaxLen+1)} {
			require.ErrorIs(t, ValidateName(name), ErrInvalidName, name)
		}
	})
}
