package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// ErrNotRunning is returned by Call when nothing serves the socket.
var ErrNotRunning = errors.New("agent not running")

// defaultCallTimeout bounds a Call whose context has no deadline. A halt
// waits for every revert, each bounded by the manager (10 s), in parallel.
const defaultCallTimeout = time.Minute

// Call sends req to the agent serving the socket at path and returns its
// answer. A Response with OK false is returned as an error carrying the
// agent's message; a missing socket or one nobody serves wraps
// ErrNotRunning.
func Call(ctx context.Context, path string, req Request) (*Response, error) {
	if path == "" {
		path = DefaultPath
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w or socket at %s not found", ErrNotRunning, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("permission denied on %s: run as root", path)
	case err != nil:
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	// The connection follows ctx: a cancelled caller is not left blocked.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	data, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	_, werr := conn.Write(append(data, '\n'))
	// Read the answer even if the write failed: a server that refuses the
	// caller answers and closes before reading anything, and that answer
	// says why.
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		switch {
		case werr != nil:
			return nil, fmt.Errorf("send to the agent: %w", werr)
		case ctx.Err() != nil:
			return nil, fmt.Errorf("no answer from the agent: %w", ctx.Err())
		}
		return nil, fmt.Errorf("read the agent's answer: %w", err)
	}
	if !resp.OK {
		if resp.Error == "" {
			resp.Error = "request failed"
		}
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
