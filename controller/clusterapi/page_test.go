package clusterapi

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/turbulence-sre/turbulence/internal/limits"
	"github.com/turbulence-sre/turbulence/internal/tlsutil"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// TestListServers_Pages: the membership is listed by ID in pages, and a
// page size above the maximum is refused naming the field.
func TestListServers_Pages(t *testing.T) {
	var ids []string
	for i := range 7 {
		ids = append(ids, fmt.Sprintf("c%d", 7-i))
	}
	s := New(&fakeRaft{servers: members(ids...)}, nil)
	ctx := asCaller(t, tlsutil.Identity{Role: tlsutil.RoleViewer, Name: "v"})
	var got []string
	for token := ""; ; {
		resp, err := s.ListServers(ctx, &turbulencev1.ListServersRequest{PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetServers()) > 3 {
			t.Fatalf("page of %d servers, asked for 3", len(resp.GetServers()))
		}
		for _, sv := range resp.GetServers() {
			got = append(got, sv.GetId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if want := "c1 c2 c3 c4 c5 c6 c7"; strings.Join(got, " ") != want {
		t.Errorf("servers by pages = %v, want %s", got, want)
	}
	_, err := s.ListServers(ctx, &turbulencev1.ListServersRequest{PageSize: limits.MaxPageServers + 1})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), fmt.Sprintf("page_size: %d is above the maximum of %d", limits.MaxPageServers+1, limits.MaxPageServers)) {
		t.Errorf("ListServers(page_size too large) = %v, want InvalidArgument naming the maximum", err)
	}
}
