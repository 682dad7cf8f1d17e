package network

// errOps answers every call with err: the backend when netlink could not
// be opened (or off Linux).
type errOps struct{ err error }

func (e errOps) Qdiscs(string) ([]Qdisc, error)                     { return nil, e.err }
func (e errOps) ReplaceQdisc(Qdisc) error                           { return e.err }
func (e errOps) DeleteQdisc(Qdisc) error                            { return e.err }
func (e errOps) AddClass(Class) error                               { return e.err }
func (e errOps) AddFilter(Filter) error                             { return e.err }
func (e errOps) Links() ([]string, error)                           { return nil, e.err }
func (e errOps) Filters(string, uint32) ([]Filter, error)           { return nil, e.err }
func (e errOps) DeleteFilters(string, uint32, uint16, uint16) error { return e.err }
func (e errOps) AddIFB(string, string) error                        { return e.err }
func (e errOps) LinkAlias(string) (string, error)                   { return "", e.err }
func (e errOps) DeleteLink(string) error                            { return e.err }
