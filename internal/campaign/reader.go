package campaign

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetsms/jetsms/internal/jsonw"
	"github.com/jetsms/jetsms/job"
)

// DestinationColumn is the column every recipients file must have.
const DestinationColumn = "destination"

// readBufferSize is the read-ahead of the CSV reader: rows are read one at a time
// from it, so memory does not grow with the file.
const readBufferSize = 64 << 10

// MaxRowBytesDefault bounds one record of a recipients file (all its fields and
// line breaks): far above any message's row, far below memory.
const MaxRowBytesDefault = 64 << 10

// outMargin is added to the content limit (in bytes: 4 per character) to bound a
// row's rendered message, so that a message a little too long is still rendered
// and refused with its segment count.
const outMargin = 4 << 10

// ErrInvalidFile is the family of errors about a recipients file as a whole (its
// header, or a template column it lacks); bad rows are reported one by one instead.
var ErrInvalidFile = errors.New("invalid recipients file")

// RowError is a row that makes no job: its line in the file (where the record
// starts), its row number and what is wrong with it.
type RowError struct {
	Line   int
	Row    int
	Reason string
}

// Error returns "line <n>: <reason>".
func (e *RowError) Error() string { return "line " + strconv.Itoa(e.Line) + ": " + e.Reason }

// Row is one record of the file and the job made from it.
type Row struct {
	// Number counts records from 1 after the header; it is the job id's row.
	Number int
	// Line is the file's line where the record starts.
	Line int
	// Err is set when the row makes no job; Job and Data are then empty.
	Err *RowError
	// Job is the job as the worker will decode it: ID, Destination, Content,
	// Scheduled, Segments and Encoding are set.
	Job job.Job
	// Data is the job's JSON as published. It is new for every row.
	Data []byte
	// hash sums the record's raw fields, for the campaign record's digest of the
	// rows published so far.
	hash uint64
}

// ReaderConfig says how rows become jobs.
type ReaderConfig struct {
	// Campaign names the campaign; it starts every job id. Required.
	Campaign string
	// Template makes each row's content. Required.
	Template *Template
	// Schedule, when set, is every job's scheduled time; a row read once it has
	// passed makes a job without one, sent at once (as the worker sends a job
	// that fell due while it waited).
	Schedule *time.Time
	// MaxSegments caps a job's content, as the worker's jobs.max_segments does;
	// zero means job.MaxSegmentsDefault.
	MaxSegments int
	// Now is the clock Schedule is checked against (at most 60 days ahead); nil
	// means time.Now.
	Now func() time.Time
	// MaxRowBytes bounds one record of the file; a longer one stops the read
	// with an error naming its line. Zero means MaxRowBytesDefault.
	MaxRowBytes int
}

// Reader streams a recipients file: a header row naming the columns (one of them
// DestinationColumn), then one row per message. It holds one row at a time, so a
// file of any size is read in constant memory. A Reader is not safe for
// concurrent use.
type Reader struct {
	cfg    ReaderConfig
	dec    job.Decoder
	src    *countingReader
	outMax int // the most bytes one row's message may render to
	csv    *csv.Reader
	header []string
	dest   int   // index of the destination column
	used   []int // columns the template names, and the destination
	data   map[string]string
	buf    bytes.Buffer
	row    Row
	n      int
	sched  []byte // the schedule as JSON, or nil
}

// NewReader reads the header of src and checks it against the template: the
// destination column must be there, and every column the template names. The
// error wraps ErrInvalidFile and names the column and the rule.
func NewReader(src io.Reader, cfg ReaderConfig) (*Reader, error) {
	if err := ValidateName(cfg.Campaign); err != nil {
		return nil, err
	}
	if cfg.Template == nil {
		return nil, fmt.Errorf("%w: a template is required", ErrInvalidTemplate)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRowBytes <= 0 {
		cfg.MaxRowBytes = MaxRowBytesDefault
	}
	maxSegments := cfg.MaxSegments
	if maxSegments <= 0 {
		maxSegments = job.MaxSegmentsDefault
	}
	cr := &countingReader{r: src, line: 1}
	r := &Reader{
		cfg:    cfg,
		dec:    job.Decoder{MaxSegments: cfg.MaxSegments, Now: cfg.Now},
		src:    cr,
		csv:    csv.NewReader(bufio.NewReaderSize(cr, readBufferSize)),
		outMax: 4*maxSegments*160 + outMargin,
	}
	// The CSV reader holds a whole record in memory: the source stops with
	// errRowTooLong once more than MaxRowBytes (plus the read-ahead) have come
	// since the record began.
	cr.limit = int64(cfg.MaxRowBytes) + readBufferSize
	// Rows of the wrong length are reported as bad rows, by us, with the column
	// they lack; ReuseRecord because each row's fields are copied as needed.
	r.csv.FieldsPerRecord = -1
	r.csv.ReuseRecord = true
	if cfg.Schedule != nil {
		r.sched = jsonw.AppendString(nil, cfg.Schedule.Format(time.RFC3339Nano))
	}
	if err := r.readHeader(); err != nil {
		return nil, err
	}
	return r, nil
}

// read reads the next record, noting where it starts.
func (r *Reader) read() ([]string, error) {
	r.src.begin(r.csv.InputOffset())
	return r.csv.Read()
}

func (r *Reader) readHeader() error {
	rec, err := r.read()
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: the file is empty; its first line must name the columns, one of them %q", ErrInvalidFile, DestinationColumn)
	}
	if errors.Is(err, errRowTooLong) {
		return r.tooLong()
	}
	if err != nil {
		return fmt.Errorf("%w: header (line 1): %w", ErrInvalidFile, err)
	}
	r.header = make([]string, len(rec))
	r.dest = -1
	for i, name := range rec {
		if i == 0 {
			name = strings.TrimPrefix(name, "\uFEFF") // a spreadsheet's byte-order mark
		}
		if !utf8.ValidString(name) {
			return fmt.Errorf("%w: header (line 1): column %d's name is not valid UTF-8", ErrInvalidFile, i+1)
		}
		name = strings.TrimSpace(name)
		for j, prev := range r.header[:i] {
			if prev == name && name != "" {
				return fmt.Errorf("%w: header (line 1): column %q appears twice (columns %d and %d)", ErrInvalidFile, name, j+1, i+1)
			}
		}
		r.header[i] = name
		if name == DestinationColumn {
			r.dest = i
		}
	}
	if r.dest < 0 {
		return fmt.Errorf("%w: header (line 1): no %q column (columns: %s); the first line must name the columns",
			ErrInvalidFile, DestinationColumn, quoteList(r.header))
	}
	r.used = []int{r.dest}
	for _, f := range r.cfg.Template.fields {
		i := indexOf(r.header, f)
		if i < 0 {
			return fmt.Errorf("%w: the template uses column %q, which the header (line 1) lacks (columns: %s)",
				ErrInvalidFile, f, quoteList(r.header))
		}
		if i != r.dest {
			r.used = append(r.used, i)
		}
	}
	r.data = make(map[string]string, len(r.header))
	return nil
}

// Columns returns the header's column names.
func (r *Reader) Columns() []string { return append([]string(nil), r.header...) }

// Offset returns how many bytes of the source have been read so far (read ahead
// of the rows returned by at most the read buffer), for progress reports.
func (r *Reader) Offset() int64 { return r.src.n }

// Next returns the next row, bad or good, or io.EOF after the last. A bad row is
// returned with Err set, and the rows after it are read as usual. Any other error
// is the source's: reading cannot go on. The row returned is valid until the next
// call, except Data, which is the caller's.
func (r *Reader) Next() (*Row, error) {
	rec, err := r.read()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	r.n++
	row := &r.row
	*row = Row{Number: r.n}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		row.Line = pe.StartLine
		row.Err = &RowError{Line: pe.StartLine, Row: r.n, Reason: "not valid CSV: " + pe.Err.Error()}
		row.hash = hashBad(pe.StartLine)
		return row, nil
	}
	if errors.Is(err, errRowTooLong) {
		return nil, r.tooLong()
	}
	if err != nil {
		return nil, fmt.Errorf("read recipients file at row %d: %w", r.n, err)
	}
	row.Line, _ = r.csv.FieldPos(0)
	row.hash = hashRecord(rec)
	if reason := r.build(rec, row); reason != "" {
		row.Err = &RowError{Line: row.Line, Row: r.n, Reason: reason}
		row.Job, row.Data = job.Job{}, nil
	}
	return row, nil
}

// build makes the row's job, or says why it cannot.
func (r *Reader) build(rec []string, row *Row) string {
	if len(rec) != len(r.header) {
		if len(rec) < len(r.header) {
			return fmt.Sprintf("has %d fields but the header has %d: column %q is missing", len(rec), len(r.header), r.header[len(rec)])
		}
		return fmt.Sprintf("has %d fields but the header has %d", len(rec), len(r.header))
	}
	for _, i := range r.used {
		if off := invalidUTF8At(rec[i]); off >= 0 {
			return fmt.Sprintf("column %q: not valid UTF-8 (byte offset %d)", r.header[i], off)
		}
	}
	for i, name := range r.header {
		r.data[name] = rec[i]
	}
	r.buf.Reset()
	if err := r.cfg.Template.execute(&r.buf, r.data, r.outMax); err != nil {
		return "template: " + err.Error()
	}
	if len(bytes.TrimSpace(r.buf.Bytes())) == 0 {
		return "content: empty after templating; the template gave no text for this row"
	}
	id := JobID(r.cfg.Campaign, row.Number)
	dest := strings.TrimSpace(rec[r.dest])
	content := r.buf.String()

	data := make([]byte, 0, 48+len(id)+len(dest)+len(content)+len(r.sched))
	data = append(data, `{"id":`...)
	data = jsonw.AppendString(data, id)
	data = append(data, `,"destination":`...)
	data = jsonw.AppendString(data, dest)
	data = append(data, `,"content":`...)
	data = jsonw.AppendString(data, content)
	if r.sched != nil && r.cfg.Schedule.After(r.cfg.Now()) {
		data = append(data, `,"scheduled":`...)
		data = append(data, r.sched...)
	}
	data = append(data, '}')
	// The worker's own rules, on the bytes it will read.
	j, err := r.dec.Decode(data)
	if err != nil {
		return err.Error()
	}
	row.Job, row.Data = j, data
	return ""
}

// tooLong is the error of a record over MaxRowBytes, naming the line it starts on.
func (r *Reader) tooLong() error {
	return fmt.Errorf("%w: line %d: the row is longer than %d bytes (a field without its closing quote, or not a recipients file?); reading stopped",
		ErrInvalidFile, r.src.line, r.cfg.MaxRowBytes)
}

// errRowTooLong: a record grew past ReaderConfig.MaxRowBytes.
var errRowTooLong = errors.New("row too long")

// countingReader counts the bytes read through it, and the lines: it keeps the
// offsets of the line breaks read ahead of the record being read, so that the
// line it starts on is known. Past limit bytes beyond the start of the record it
// fails with errRowTooLong.
type countingReader struct {
	r      io.Reader
	n      int64
	limit  int64
	start  int64   // where the record being read starts
	line   int     // the line it starts on
	breaks []int64 // offsets of the line breaks at or after start
}

// begin notes that the next record starts at offset start.
func (c *countingReader) begin(start int64) {
	i := 0
	for i < len(c.breaks) && c.breaks[i] < start {
		i++
	}
	c.line += i
	c.breaks = append(c.breaks[:0], c.breaks[i:]...)
	c.start = start
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.limit > 0 && c.n-c.start > c.limit {
		return 0, errRowTooLong
	}
	n, err := c.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		c.breaks = append(c.breaks, c.n+int64(i+j))
		i += j + 1
	}
	c.n += int64(n)
	return n, err
}

// FNV-1a, 64 bits: a stable hash of each row's raw fields (maphash's seed changes
// with every process, and the digest must not).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashRecord(rec []string) uint64 {
	h := uint64(fnvOffset)
	for _, f := range rec {
		for i := 0; i < len(f); i++ {
			h ^= uint64(f[i])
			h *= fnvPrime
		}
		h ^= 0x1f // unit separator: "a,bc" and "ab,c" differ
		h *= fnvPrime
	}
	return h
}

// hashBad stands for a record that is not valid CSV, which has no fields.
func hashBad(line int) uint64 {
	h := uint64(fnvOffset) ^ 0xbad
	return (h ^ uint64(line)) * fnvPrime
}

// invalidUTF8At returns the offset of the first byte of s that is not valid UTF-8,
// or -1.
func invalidUTF8At(s string) int {
	if utf8.ValidString(s) {
		return -1
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
