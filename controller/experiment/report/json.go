package report

import (
	"encoding/json"
	"fmt"
	"io"
)

// JSON writes r as indented JSON, the form `turbctl experiment report
// -o json` prints and ReadJSON reads back.
func JSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// ReadJSON decodes a report written by JSON. Unknown fields are ignored
// rather than refused: a report from a newer controller (FormatVersion
// only grows by adding fields) still reads.
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	return &r, nil
}
