// Command sysguest is the systemd boot's guest program (TestVMLab_Systemd
// in test/vmlab). The one static binary plays two parts:
//
//   - As the initramfs's /init (PID 1) it loads the modules the host lists
//     with finit_module, gives eth0 its address, mounts the ext4 root
//     disk, installs itself there as the driver service and hands PID 1
//     to Debian's systemd (/sbin/init) in the new root, as switch_root
//     does. Nothing in the root manages the network, so the address stays.
//   - Run by systemd as vmlab-driver.service (argv[1] "driver"), it dials
//     the host's listener on the lab's bridge and answers its requests
//     (vmlab.Request), one JSON line each way: run a command given as an
//     argv (no shell), list the processes, write a file, read the
//     monotonic clock. The host decides every step; the guest only does
//     what it is told and reports exactly what happened.
//
// It is not a product binary: it exists only to be built by the lab.
package main
