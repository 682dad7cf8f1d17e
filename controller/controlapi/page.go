package controlapi

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/turbulence-sre/turbulence/controller/state"
)

// Paging (docs/limits.md). A page token is the last record's sort key,
// prefixed with the list it belongs to and base64url-encoded: opaque to
// clients, meaningful to every node (it names a key, not a position, so
// a page read from another node, or after new records arrived, neither
// repeats nor skips a record that existed throughout).

// Token prefixes, one per list, so that a token of one list is refused by
// another.
const (
	tokenAgents = "a"
	tokenFaults = "f"
	tokenEvents = "e"
	tokenAudit  = "u"
	tokenGroups = "g"
	// TokenServers is used by clusterapi.
	TokenServers = "s"
)

// EncodeToken makes a page token of a list and a key.
func EncodeToken(list, key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + ":" + key))
}

// DecodeToken returns the key of a page token of list; "" for "".
func DecodeToken(list, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", invalidField("page_token", "is not a page token of this list (pass back next_page_token as it was received)")
	}
	key, ok := strings.CutPrefix(string(b), list+":")
	if !ok {
		return "", invalidField("page_token", "is not a page token of this list (pass back next_page_token as it was received)")
	}
	return key, nil
}

// PageSize returns the page size a request asks for: def for 0, and an
// InvalidArgument naming the field and the maximum above max.
func PageSize(field string, asked uint32, def, maxSize int) (int, error) {
	switch {
	case asked == 0:
		return def, nil
	case int64(asked) > int64(maxSize):
		return 0, invalidField(field, fmt.Sprintf("%d is above the maximum of %d", asked, maxSize))
	}
	return int(asked), nil
}

// invalidField is InvalidArgument with one field violation.
func invalidField(field, desc string) error {
	st := status.New(codes.InvalidArgument, field+": "+desc)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}}); err == nil {
		st = d
	}
	return st.Err()
}

// timeRange checks optional since/until timestamps.
func timeRange(since, until *timestamppb.Timestamp) (time.Time, time.Time, error) {
	var s, u time.Time
	if since != nil {
		if err := since.CheckValid(); err != nil {
			return s, u, invalidField("since", err.Error())
		}
		s = since.AsTime()
	}
	if until != nil {
		if err := until.CheckValid(); err != nil {
			return s, u, invalidField("until", err.Error())
		}
		u = until.AsTime()
	}
	if !s.IsZero() && !u.IsZero() && !s.Before(u) {
		return s, u, invalidField("until", "must be after since")
	}
	return s, u, nil
}

// faultToken and parseFaultToken encode a fault cursor as
// "<unix nanoseconds>/<id>".
func faultToken(c state.FaultCursor) string { return cursorToken(tokenFaults, c) }

func parseFaultToken(token string) (state.FaultCursor, error) {
	return parseCursorToken(tokenFaults, token)
}

// cursorToken and parseCursorToken encode a creation-order cursor (faults,
// fault groups) as "<unix nanoseconds>/<id>".
func cursorToken(list string, c state.FaultCursor) string {
	return EncodeToken(list, strconv.FormatInt(c.CreatedAt.UnixNano(), 10)+"/"+c.ID)
}

func parseCursorToken(list, token string) (state.FaultCursor, error) {
	key, err := DecodeToken(list, token)
	if err != nil || key == "" {
		return state.FaultCursor{}, err
	}
	ns, id, ok := strings.Cut(key, "/")
	n, perr := strconv.ParseInt(ns, 10, 64)
	if !ok || perr != nil || id == "" {
		return state.FaultCursor{}, invalidField("page_token", "is not a page token of this list (pass back next_page_token as it was received)")
	}
	return state.FaultCursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// seqToken and parseSeqToken encode a sequence number cursor.
func seqToken(list string, seq uint64) string {
	return EncodeToken(list, strconv.FormatUint(seq, 10))
}

func parseSeqToken(list, token string) (uint64, error) {
	key, err := DecodeToken(list, token)
	if err != nil || key == "" {
		return 0, err
	}
	n, perr := strconv.ParseUint(key, 10, 64)
	if perr != nil {
		return 0, invalidField("page_token", "is not a page token of this list (pass back next_page_token as it was received)")
	}
	return n, nil
}
