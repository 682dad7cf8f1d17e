package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// Every list call is paged (docs/limits.md): turbctl follows the pages
// and prints one list, so that a list command shows everything unless
// --limit stops it early.

// pageFetch fetches one page of size records (0: the server's default)
// after token, keeps its records, and returns how many it kept and the
// next page token ("" at the end).
type pageFetch func(ctx context.Context, token string, size uint32) (n int, next string, err error)

// pages follows a list from its first page until the end, or until limit
// records were fetched (0: no limit). maxPage is the list's largest page
// (internal/limits): turbctl asks for full pages so that a long list
// costs as few calls as it can, and for no more than it still needs when
// --limit is near. Each page is its own call with its own deadline.
func (c *client) pages(ctx context.Context, limit, maxPage int, fetch pageFetch) error {
	got, token := 0, ""
	for {
		size := maxPage
		if limit > 0 {
			size = min(size, limit-got)
		}
		var n int
		var next string
		err := c.call(ctx, func(ctx context.Context) (err error) {
			n, next, err = fetch(ctx, token, uint32(size))
			return err
		})
		if err != nil {
			return err
		}
		got += n
		if next == "" || (limit > 0 && got >= limit) {
			return nil
		}
		if next == token {
			// A server that repeats its token would loop for ever.
			return fmt.Errorf("the controller returned the same page token twice")
		}
		token = next
	}
}

// checkBounds is a client interceptor: it refuses a request over its field
// bounds (internal/limits) before sending it, as the controller would,
// with InvalidArgument naming the field and the limit (exit 3). It saves
// the round trip of a 4 MB halt reason that would be refused anyway.
func checkBounds(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if m, ok := req.(proto.Message); ok {
		if err := limits.Check(m); err != nil {
			return boundsError(err)
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func boundsError(err error) error {
	var le *limits.Error
	if !errors.As(err, &le) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	br := &errdetails.BadRequest{}
	msgs := make([]string, 0, len(le.Violations))
	for _, v := range le.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
		msgs = append(msgs, v.Field+": "+v.Description)
	}
	st := status.New(codes.InvalidArgument, "request over its bounds (docs/limits.md), not sent: "+strings.Join(msgs, "; "))
	if d, derr := st.WithDetails(br); derr == nil {
		st = d
	}
	return st.Err()
}
