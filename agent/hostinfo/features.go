package hostinfo

// Kernel feature names reported in Capabilities.kernel_features. The
// controller refuses a fault whose feature an agent lacks, naming it
// (controller/controlapi), so they read like the modules to load.
const (
	FeatureNetem    = "sch_netem"
	FeaturePrio     = "sch_prio"
	FeatureTbf      = "sch_tbf"
	FeatureHtb      = "sch_htb"
	FeatureIngress  = "sch_ingress"
	FeatureU32      = "cls_u32"
	FeatureIFB      = "ifb"
	FeatureMirred   = "act_mirred"
	FeatureNftables = "nftables"
)
