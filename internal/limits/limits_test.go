package limits_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/turbulence-sre/turbulence/internal/limits"
	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
	turbulencev1 "github.com/turbulence-sre/turbulence/proto/turbulence/v1"
)

// roots are the messages whose every field must be bounded: the inputs and
// outputs of every method of every service, the agents' stream messages,
// and the raft log entry.
func roots() []protoreflect.MessageDescriptor {
	var out []protoreflect.MessageDescriptor
	for _, fd := range []protoreflect.FileDescriptor{
		turbulencev1.File_turbulence_v1_control_proto,
		turbulencev1.File_turbulence_v1_cluster_proto,
		turbulencev1.File_turbulence_v1_agent_proto,
	} {
		svcs := fd.Services()
		for i := range svcs.Len() {
			ms := svcs.Get(i).Methods()
			for j := range ms.Len() {
				out = append(out, ms.Get(j).Input(), ms.Get(j).Output())
			}
		}
	}
	return append(out, (&raftv1.LogEntry{}).ProtoReflect().Descriptor())
}

func TestEveryFieldBounded(t *testing.T) {
	for _, md := range roots() {
		for _, f := range limits.Unbounded(md) {
			t.Errorf("%s: field %s has no bound in internal/limits", md.FullName(), f)
		}
	}
}

// TestPagesFitMessageCap proves that the largest response of every call —
// a full page of records with every field at its bound — fits in one gRPC
// message. docs/limits.md quotes the figures it logs.
func TestPagesFitMessageCap(t *testing.T) {
	for _, md := range roots() {
		n := limits.MaxSize(md)
		t.Logf("%-40s %9d bytes", md.FullName(), n)
		if n > limits.MaxMessageBytes {
			t.Errorf("MaxSize(%s) = %d, above the message cap of %d bytes", md.FullName(), n, limits.MaxMessageBytes)
		}
	}
	for _, m := range []proto.Message{&turbulencev1.Agent{}, &turbulencev1.Fault{}, &turbulencev1.Event{}, &turbulencev1.AuditEntry{}, &turbulencev1.Server{}} {
		md := m.ProtoReflect().Descriptor()
		t.Logf("one %-36s %9d bytes", md.FullName(), limits.MaxSize(md))
	}
}

func TestMaxSizeIsAnUpperBound(t *testing.T) {
	// A message filled to its bounds encodes to no more than MaxSize.
	labels := map[string]string{}
	for i := range limits.MaxLabels {
		labels[fmt.Sprintf("%0*d", limits.MaxLabelKey, i)] = strings.Repeat("v", limits.MaxLabelValue)
	}
	a := &turbulencev1.Agent{
		Id:     strings.Repeat("a", limits.MaxID),
		Labels: labels,
		Facts: &turbulencev1.HostFacts{
			Hostname: strings.Repeat("h", limits.MaxHostname), Os: strings.Repeat("o", limits.MaxFact),
			Cpus: math.MaxUint32, MemoryBytes: math.MaxUint64,
		},
	}
	if err := limits.Check(a); err != nil {
		t.Fatalf("Check(full agent) = %v, want nil", err)
	}
	got, want := proto.Size(a), limits.MaxSize(a.ProtoReflect().Descriptor())
	if got > want {
		t.Errorf("proto.Size(full agent) = %d, above MaxSize = %d", got, want)
	}
}

func TestCheck(t *testing.T) {
	big := strings.Repeat("x", 4<<20)
	manyLabels := map[string]string{}
	for i := range limits.MaxLabels + 1 {
		manyLabels[fmt.Sprint(i)] = "v"
	}
	tests := []struct {
		name string
		msg  proto.Message
		// want are substrings of the error; none means the message passes.
		want []string
	}{
		{"small halt", &turbulencev1.HaltRequest{RequestId: "r-1", Reason: "bad deploy"}, nil},
		{"halt reason at the limit", &turbulencev1.HaltRequest{Reason: strings.Repeat("r", limits.MaxReason)}, nil},
		{"halt reason over the limit", &turbulencev1.HaltRequest{Reason: strings.Repeat("r", limits.MaxReason+1)},
			[]string{"reason: is 1025 bytes long, above the limit of 1024 bytes"}},
		{"4 MB request ID", &turbulencev1.ApplyFaultRequest{RequestId: big},
			[]string{"request_id: is 4194304 bytes long, above the limit of 128 bytes"}},
		{"too many labels", &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Hello{Hello: &turbulencev1.Hello{Labels: manyLabels}}},
			[]string{"hello.labels: has 33 entries, above the limit of 32"}},
		{"long label value", &turbulencev1.Hello{Labels: map[string]string{"zone": big}},
			[]string{`labels["zone"]: is 4194304 bytes long, above the limit of 255 bytes`}},
		{"long label key", &turbulencev1.Hello{Labels: map[string]string{big: "v"}},
			[]string{"labels: has a key of 4194304 bytes, above the limit of 63 bytes"}},
		{"nested list element", &turbulencev1.ApplyFaultRequest{Spec: &turbulencev1.FaultSpec{Kind: &turbulencev1.FaultSpec_Partition{
			Partition: &turbulencev1.PartitionSpec{Target: &turbulencev1.TrafficTarget{Cidrs: []string{"198.18.0.0/15", big}}},
		}}}, []string{"spec.partition.target.cidrs[1]: is 4194304 bytes long, above the limit of 64 bytes"}},
		{"status in a heartbeat", &turbulencev1.Heartbeat{Faults: []*turbulencev1.FaultStatus{{FaultId: "f-1", Reason: big}}},
			[]string{"faults[0].reason: is 4194304 bytes long"}},
		{"several problems", &turbulencev1.HaltRequest{RequestId: big, Reason: big},
			[]string{"request_id: is 4194304 bytes long", "reason: is 4194304 bytes long"}},
		{"field without a bound", wrapperspb.String("x"), []string{"value: has no declared bound"}},
		{"log entry", &raftv1.LogEntry{Actor: big}, []string{"actor: is 4194304 bytes long, above the limit of 256 bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := limits.Check(tt.msg)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Check() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check() = nil, want an error with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check() = %q, want it to contain %q", err, w)
				}
			}
			if len(err.Error()) > 2048 {
				t.Errorf("Check() error is %d bytes long; a refusal must stay small", len(err.Error()))
			}
		})
	}
}

func TestCheckUnknownFields(t *testing.T) {
	m := &turbulencev1.HaltRequest{}
	// Field 99, length-delimited, 2 KiB: a field this server does not know.
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, make([]byte, 2048))
	m.ProtoReflect().SetUnknown(unknown)
	err := limits.Check(m)
	if err == nil || !strings.Contains(err.Error(), "unknown fields, above the limit of 1024 bytes") {
		t.Fatalf("Check(2 KiB unknown) = %v, want the unknown-field limit", err)
	}
}

// BenchmarkCheckHeartbeat is the cost of the check on the hottest message,
// an agent's heartbeat holding 16 faults (the policy's default maximum).
func BenchmarkCheckHeartbeat(b *testing.B) {
	hb := &turbulencev1.Heartbeat{}
	for i := range 16 {
		hb.Faults = append(hb.Faults, &turbulencev1.FaultStatus{
			FaultId: fmt.Sprintf("f-%012d", i), State: turbulencev1.FaultState_FAULT_STATE_ACTIVE,
			Exclusions: []string{"controllers (198.18.0.1/32)", "ssh (port 22)", "dns to 198.18.0.53"},
		})
	}
	m := &turbulencev1.AgentMessage{Msg: &turbulencev1.AgentMessage_Heartbeat{Heartbeat: hb}}
	b.ReportAllocs()
	for b.Loop() {
		if err := limits.Check(m); err != nil {
			b.Fatal(err)
		}
	}
}
