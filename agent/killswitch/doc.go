// Package killswitch holds the controller-lease watchdog (invariant 2: no
// fault outlives its controller).
//
// The session calls Renew on every message it receives from a controller
// (docs/protocol.md §6: any ControllerMessage renews the lease). When
// nothing was heard for the lease TTL, the watchdog reverts every fault the
// agent holds with reason "lease expired". The TTL is 15 s until a
// controller sends one (Welcome or LeaseRenewal).
//
// A reconnect within the TTL reverts nothing: the watchdog does not care
// which connection the renewal came on, only that one came. That is what
// lets a controller leader change shorter than the TTL go unnoticed by the
// faults.
//
// Per-fault deadline timers are not here but in agent/inject.Manager: they
// must be armed under the same lock that registers the fault, before the
// injector runs (invariant 1). This package only decides when a lost
// controller ends everything, and calls the Manager to do it.
package killswitch
