package probe

import (
	"encoding/json"
	"math"
	"time"
)

// sampleJSON is Sample on the wire, with Value as a pointer: JSON has no
// NaN, and a sample that measured nothing must still encode.
type sampleJSON struct {
	At     time.Time `json:"at"`
	Value  *float64  `json:"value"`
	Pass   bool      `json:"pass"`
	Err    string    `json:"err,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// MarshalJSON writes Value as null when it is NaN or infinite
// (encoding/json refuses those), so a report can always hold a sample.
func (s Sample) MarshalJSON() ([]byte, error) {
	w := sampleJSON{At: s.At, Pass: s.Pass, Err: s.Err, Detail: s.Detail}
	if !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) {
		w.Value = &s.Value
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads a null Value back as NaN.
func (s *Sample) UnmarshalJSON(b []byte) error {
	var w sampleJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Sample{At: w.At, Value: math.NaN(), Pass: w.Pass, Err: w.Err, Detail: w.Detail}
	if w.Value != nil {
		s.Value = *w.Value
	}
	return nil
}
