package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/internal/termsafe"
)

// writeJSON prints m as one indented JSON document. protojson's own
// whitespace is deliberately unstable between builds, so the output is
// re-indented with encoding/json to keep it byte-for-byte stable.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// writeJSONList prints a list response so that an empty list is "[]",
// not absent: scripts can always iterate over it. An empty page token is
// left out as proto3 JSON leaves out every empty field.
func writeJSONList(w io.Writer, m proto.Message, n int) error {
	if n > 0 {
		return writeJSON(w, m)
	}
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.IsList() {
			_, err := fmt.Fprintf(w, "{\n  %q: []\n}\n", fd.JSONName())
			return err
		}
	}
	return writeJSON(w, m)
}

// writeJSONLine prints m as one compact JSON object on one line.
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// table is a tabwriter with the house padding.
func table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// cellCleaner keeps text from the controller (reasons, messages) from
// breaking a table: tabs and line breaks become spaces.
var cellCleaner = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// cell is how any text from elsewhere is shown in a table: tabs and line
// breaks as spaces, and every other character a terminal would act on
// (NUL, ESC, bidirectional controls…) escaped (internal/termsafe).
func cell(s string) string { return termsafe.String(cellCleaner.Replace(s)) }

// row writes one tab-separated row. Every table goes through it, so every
// cell is made safe here.
func row(w io.Writer, cells ...string) {
	// A copy: callers pass shared slices (eventColumns) with `...`.
	safe := make([]string, len(cells))
	for i, c := range cells {
		safe[i] = cell(c)
	}
	fmt.Fprintln(w, strings.Join(safe, "\t"))
}

// none is how an empty cell is shown.
const none = "-"

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

// human renders d compactly: "850ms", "8s", "2m30s", "1h5m", "3d4h".
// Above a minute it drops the smaller units that no longer matter.
func human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d == 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
		return joinUnits(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return joinUnits(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	default:
		d = d.Round(time.Hour)
		return joinUnits(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
	}
}

func joinUnits(big int, bigUnit string, small int, smallUnit string) string {
	s := strconv.Itoa(big) + bigUnit
	if small != 0 {
		s += strconv.Itoa(small) + smallUnit
	}
	return s
}

// relative renders t against now: "in 8s", "12s ago", "now".
func relative(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return none
	}
	d := t.AsTime().Sub(now)
	switch {
	case d > -time.Second/2 && d < time.Second/2:
		return "now"
	case d > 0:
		return "in " + human(d)
	default:
		return human(d) + " ago"
	}
}

// absolute renders t in UTC, RFC 3339, with its relative form.
func absolute(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return none
	}
	return t.AsTime().UTC().Format(time.RFC3339) + " (" + relative(t, now) + ")"
}

// stamp renders t in UTC, RFC 3339, alone.
func stamp(t *timestamppb.Timestamp) string {
	if t == nil {
		return none
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func duration(d *durationpb.Duration) string {
	if d == nil {
		return none
	}
	return human(d.AsDuration())
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// bytesIEC renders n bytes with binary units: "15.6GiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + string("KMGTPE"[exp]) + "iB"
}

// labels renders a label map sorted by key: "env=prod,role=web".
func labels(m map[string]string) string {
	if len(m) == 0 {
		return none
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

func uintList(v []uint32) string {
	if len(v) == 0 {
		return none
	}
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.FormatUint(uint64(n), 10)
	}
	return strings.Join(parts, ",")
}
