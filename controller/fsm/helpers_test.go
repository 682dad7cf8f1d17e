package fsm

import (
	"reflect"

	"github.com/hashicorp/raft"

	raftv1 "github.com/turbulence-sre/turbulence/proto/turbulence/raft/v1"
)

func typeOf(e *raftv1.LogEntry) reflect.Type { return reflect.TypeOf(e.GetCmd()) }

func rawLog(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Type: raft.LogCommand, Data: data}
}
