package network

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// fakeOps is an in-memory kernel: one interface set, qdiscs, classes and
// filters, rendered as canonical lines. failAt makes the n-th mutating
// call fail (1-based; 0 never).
type fakeOps struct {
	links   []string
	qdiscs  []Qdisc
	classes []Class
	filters []Filter
	calls   int
	failAt  int
	aliases map[string]string
}

var errInjected = errors.New("injected failure")

func newFake(links ...string) *fakeOps {
	f := &fakeOps{links: links}
	for _, l := range links {
		f.qdiscs = append(f.qdiscs, Qdisc{Link: l, Kind: "noqueue", Parent: HandleRoot})
	}
	return f
}

func (f *fakeOps) mutate() error {
	f.calls++
	if f.calls == f.failAt {
		return errInjected
	}
	return nil
}

func (f *fakeOps) has(link string) error {
	if !slices.Contains(f.links, link) {
		return fmt.Errorf("%w %q on this host", ErrNoInterface, link)
	}
	return nil
}

func (f *fakeOps) Qdiscs(link string) ([]Qdisc, error) {
	if err := f.has(link); err != nil {
		return nil, err
	}
	var out []Qdisc
	for _, q := range f.qdiscs {
		if q.Link == link {
			out = append(out, q)
		}
	}
	return out, nil
}

func (f *fakeOps) ReplaceQdisc(q Qdisc) error {
	if err := f.mutate(); err != nil {
		return err
	}
	if q.Parent == HandleRoot { // a new root replaces the whole tree
		f.dropLink(q.Link)
	}
	f.qdiscs = append(f.qdiscs, q)
	return nil
}

func (f *fakeOps) dropLink(link string) {
	f.qdiscs = slices.DeleteFunc(f.qdiscs, func(x Qdisc) bool { return x.Link == link })
	f.classes = slices.DeleteFunc(f.classes, func(x Class) bool { return x.Link == link })
	f.filters = slices.DeleteFunc(f.filters, func(x Filter) bool { return x.Link == link })
}

func (f *fakeOps) DeleteQdisc(q Qdisc) error {
	if err := f.mutate(); err != nil {
		return err
	}
	switch q.Parent {
	case HandleRoot: // the kernel reattaches its default
		f.qdiscs = slices.DeleteFunc(f.qdiscs, func(x Qdisc) bool { return x.Link == q.Link && x.Parent != HandleIngress })
		f.classes = slices.DeleteFunc(f.classes, func(x Class) bool { return x.Link == q.Link })
		f.filters = slices.DeleteFunc(f.filters, func(x Filter) bool { return x.Link == q.Link && x.Parent != IngressHandle })
		f.qdiscs = append(f.qdiscs, Qdisc{Link: q.Link, Kind: "noqueue", Parent: HandleRoot})
	case HandleIngress:
		f.qdiscs = slices.DeleteFunc(f.qdiscs, func(x Qdisc) bool { return x.Link == q.Link && x.Parent == HandleIngress })
		f.filters = slices.DeleteFunc(f.filters, func(x Filter) bool { return x.Link == q.Link && x.Parent == IngressHandle })
	}
	return nil
}

func (f *fakeOps) Filters(link string, parent uint32) ([]Filter, error) {
	if err := f.has(link); err != nil {
		return nil, err
	}
	var out []Filter
	for _, x := range f.filters {
		if x.Link == link && x.Parent == parent {
			out = append(out, x)
		}
	}
	return out, nil
}

func (f *fakeOps) DeleteFilters(link string, parent uint32, prio, proto uint16) error {
	if err := f.mutate(); err != nil {
		return err
	}
	f.filters = slices.DeleteFunc(f.filters, func(x Filter) bool {
		return x.Link == link && x.Parent == parent && x.Priority == prio && x.Protocol == proto
	})
	return nil
}

func (f *fakeOps) AddIFB(name, alias string) error {
	if err := f.mutate(); err != nil {
		return err
	}
	if slices.Contains(f.links, name) {
		return fmt.Errorf("create ifb device %s: file exists", name)
	}
	f.links = append(f.links, name)
	if f.aliases == nil {
		f.aliases = map[string]string{}
	}
	f.aliases[name] = alias
	f.qdiscs = append(f.qdiscs, Qdisc{Link: name, Kind: "noqueue", Parent: HandleRoot})
	return nil
}

func (f *fakeOps) DeleteLink(name string) error {
	if err := f.has(name); err != nil {
		return err
	}
	if err := f.mutate(); err != nil {
		return err
	}
	f.links = slices.DeleteFunc(f.links, func(l string) bool { return l == name })
	f.dropLink(name)
	return nil
}

func (f *fakeOps) AddClass(c Class) error {
	if err := f.mutate(); err != nil {
		return err
	}
	f.classes = append(f.classes, c)
	return nil
}

func (f *fakeOps) AddFilter(x Filter) error {
	if err := f.mutate(); err != nil {
		return err
	}
	f.filters = append(f.filters, x)
	return nil
}

func (f *fakeOps) Links() ([]string, error) { return f.links, nil }

func (f *fakeOps) LinkAlias(name string) (string, error) {
	if err := f.has(name); err != nil {
		return "", err
	}
	return f.aliases[name], nil
}

// lines renders the state canonically, sorted.
func (f *fakeOps) lines() []string {
	var out []string
	for _, l := range f.links {
		out = append(out, "link "+l)
	}
	for _, q := range f.qdiscs {
		out = append(out, q.String())
	}
	for _, c := range f.classes {
		out = append(out, c.String())
	}
	for _, x := range f.filters {
		out = append(out, x.String())
	}
	sort.Strings(out)
	return out
}
