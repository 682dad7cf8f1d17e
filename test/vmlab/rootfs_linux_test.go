package vmlab_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The systemd boot's root filesystem: Debian 12 with systemd as init,
// built by mmdebstrap from the machine's own apt sources and cached in
// build/vmlab under a key of everything that shapes it.
const (
	// rootfsSuite is Debian 12, whatever the host runs.
	rootfsSuite = "bookworm"
	// rootfsVersion changes the cache key when the way the image is made
	// changes (not its package list, which is in the key already).
	rootfsVersion = "1"
	// rootfsSize is the ext4 image's size; the file is sparse.
	rootfsSize = "1G"
	rootfsFile = "rootfs.ext4"
)

// rootfsPackages are installed on top of mmdebstrap's minbase (Essential
// packages and apt): systemd as PID 1 (systemd-sysv); dbus, which
// systemctl and systemd-analyze expect on a Debian host; and procps, of
// priority important, so on every real Debian host: the agent's unit
// reloads with its /bin/kill, and without it systemd-analyze verify
// rightly fails ("Command /bin/kill is not executable"). No udev (the
// guest's /init loads every module the lab needs, and devtmpfs makes the
// nodes), no iproute2 (the agent speaks netlink itself), no ifupdown (the
// /init configures eth0 before systemd starts).
var rootfsPackages = []string{"systemd-sysv", "dbus", "procps"}

// rootfsKey names the cache directory of an image.
func rootfsKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "version %s\nsuite %s\nsize %s\npackages %s\n", rootfsVersion, rootfsSuite, rootfsSize, strings.Join(rootfsPackages, ","))
	return "rootfs-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureRootfsTools installs mmdebstrap (which builds the root without a
// chroot script of ours), e2fsprogs (mkfs.ext4 -d) and dpkg-dev's
// dpkg-deb when missing.
func ensureRootfsTools(t *testing.T) {
	t.Helper()
	installMissing(t, map[string]string{"mmdebstrap": "mmdebstrap", "mkfs.ext4": "e2fsprogs", "dpkg-deb": "dpkg"})
}

// prepareRootfs returns the cached ext4 image, building it first if no
// earlier run did. The image is never written to: qemu boots it with
// snapshot=on.
func prepareRootfs(t *testing.T, cache string) string {
	t.Helper()
	unlock := lockCache(t, cache)
	defer unlock()
	dir := filepath.Join(cache, rootfsKey())
	img := filepath.Join(dir, rootfsFile)
	if _, err := os.Stat(filepath.Join(dir, readyMark)); err == nil {
		return img
	}
	mirror, security, err := debianMirrors("/etc/apt")
	if err != nil {
		missing(t, "%v", err)
	}
	t.Logf("building the Debian %s root filesystem in %s (once: later runs reuse it)", rootfsSuite, dir)
	start := time.Now()
	// Images of other keys are outdated (a package list or the version
	// changed): each holds a few hundred MB.
	old, _ := filepath.Glob(filepath.Join(cache, "rootfs-*"))
	for _, o := range append(old, dir) {
		if err := os.RemoveAll(o); err != nil {
			t.Fatal(err)
		}
	}
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--variant=minbase", "--include=" + strings.Join(rootfsPackages, ","), "--quiet"}
	for _, o := range aptOptions() {
		args = append(args, "--aptopt="+o)
	}
	args = append(args, rootfsSuite, tree,
		"deb "+mirror+" "+rootfsSuite+" main",
		"deb "+mirror+" "+rootfsSuite+"-updates main")
	if security != "" {
		args = append(args, "deb "+security+" "+rootfsSuite+"-security main")
	}
	if _, err := run("", "mmdebstrap", args...); err != nil {
		_ = os.RemoveAll(dir)
		missing(t, "build the root filesystem: %v", err)
	}
	// The guest's own name, and an fstab that mounts nothing: /init
	// mounted the root read-write already.
	for name, data := range map[string]string{
		"etc/hostname": "vmlab\n",
		"etc/fstab":    "# the VM lab's /init mounts the root (test/vmlab/sysguest)\n",
	} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run("", "mkfs.ext4", "-q", "-F", "-L", "vmlab-root", "-d", tree, img, rootfsSize); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, readyMark), []byte(strings.Join(rootfsPackages, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("root filesystem built in %.1f s", time.Since(start).Seconds())
	return img
}

// aptOptions are the host's apt settings that decide whether a download
// works here (proxies, date checks of a snapshot mirror, retries), for
// mmdebstrap's apt: what `apt-config dump` says, so apt.conf.d's syntax is
// apt's business, not ours.
func aptOptions() []string {
	out, err := run("", "apt-config", "dump")
	if err != nil {
		return nil
	}
	keep := []string{"Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until", "Acquire::Check-Date", "Acquire::Retries"}
	var opts []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		key, _, _ := strings.Cut(line, " ")
		for _, k := range keep {
			if strings.EqualFold(key, k) {
				opts = append(opts, line)
			}
		}
	}
	return opts
}

// debianMirrors reads the machine's apt sources under etc (sources.list,
// sources.list.d/*.list and *.sources) and returns the URI of its Debian
// archive (a "deb" source of a plain codename suite whose path names
// debian) and of its security archive (a "-security" suite), "" when
// there is none.
func debianMirrors(etc string) (mirror, security string, err error) {
	type source struct{ uris, suites []string }
	var sources []source
	oneLine := func(data string) {
		for line := range strings.SplitSeq(data, "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) < 3 || f[0] != "deb" {
				continue
			}
			f = f[1:]
			if strings.HasPrefix(f[0], "[") { // [options]
				for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
					f = f[1:]
				}
				if len(f) > 0 {
					f = f[1:]
				}
			}
			if len(f) >= 2 {
				sources = append(sources, source{uris: f[:1], suites: f[1:2]})
			}
		}
	}
	deb822 := func(data string) {
		for stanza := range strings.SplitSeq(data, "\n\n") {
			fields := map[string][]string{}
			for line := range strings.SplitSeq(stanza, "\n") {
				if strings.HasPrefix(strings.TrimSpace(line), "#") {
					continue
				}
				k, v, ok := strings.Cut(line, ":")
				if ok && !strings.HasPrefix(line, " ") {
					fields[strings.ToLower(strings.TrimSpace(k))] = strings.Fields(v)
				}
			}
			if e := fields["enabled"]; len(e) == 1 && e[0] == "no" {
				continue
			}
			for _, ty := range fields["types"] {
				if ty == "deb" {
					sources = append(sources, source{uris: fields["uris"], suites: fields["suites"]})
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(etc, "sources.list")); err == nil {
		oneLine(string(b))
	}
	for _, pat := range []string{"*.list", "*.sources"} {
		files, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", pat))
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if strings.HasSuffix(f, ".sources") {
				deb822(string(b))
			} else {
				oneLine(string(b))
			}
		}
	}
	for _, s := range sources {
		for _, u := range s.uris {
			pu, perr := url.Parse(u)
			if perr != nil || pu.Scheme == "" {
				continue
			}
			for _, suite := range s.suites {
				switch {
				case strings.HasSuffix(suite, "-security") && security == "":
					security = u
				case isCodename(suite) && strings.Contains(pu.Path, "debian") && !strings.Contains(pu.Path, "security") && mirror == "":
					mirror = u
				}
			}
		}
	}
	if mirror == "" {
		return "", "", fmt.Errorf("no Debian archive in the apt sources under %s (a deb source of a codename suite whose path names debian)", etc)
	}
	return mirror, security, nil
}

// isCodename reports whether suite is a plain release name (bookworm,
// trixie, stable), not an -updates, -backports or -security suite.
func isCodename(suite string) bool {
	if suite == "" {
		return false
	}
	for _, r := range suite {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}
