package reliability

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"verlauf.im/verlauf/tests/testserver"
)

// onTmpfs moves the stopped server's data directory onto a tmpfs of the
// given size, so the test can fill the disk without touching the host's.
func onTmpfs(t *testing.T, s *testserver.Server, sizeMiB int) string {
	t.Helper()
	data := filepath.Join(s.Dir, "data")
	orig := data + ".orig"
	if err := os.Rename(data, orig); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm,mode=0700", sizeMiB), "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs for the data directory (the test needs root or CAP_SYS_ADMIN): %v\n%s", err, out)
	}
	t.Cleanup(func() {
		s.Stop() // before the unmount: a running server holds files on it
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", data, err, out)
		}
	})
	if out, err := exec.Command("cp", "-a", orig+"/.", data).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v\n%s", err, out)
	}
	return data
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// fill allocates all but leave bytes of dir's file system in one file.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := freeBytes(t, dir) - leave; n > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			t.Fatalf("fallocate %d bytes: %v", n, err)
		}
	}
	return path
}

// TestDiskFull fills the file system under the data directory while users
// chat with history on. The event store then refuses appends while it can
// still do so cleanly: no message is marked archived (stanza-id) that is
// not, the server stays up and keeps routing, archiving resumes once space
// is back, every message acknowledged as archived is in the archive, and
// the store reopens and reads every record.
func TestDiskFull(t *testing.T) {
	s := testserver.Start(t, testserver.Options{Extra: "[archive]\ndefault = \"always\"\n"})
	alice, bob := addUser(t, s, "alice"), addUser(t, s, "bob")
	s.Stop()
	// The store keeps twice its memtable (2 × 64 MiB) free for Pebble.
	const reserve = 128 << 20
	data := onTmpfs(t, s, 256)
	s.Restart()

	a, b := login(t, s, alice), login(t, s, bob)
	a.Send(t, "<presence/>")
	b.Send(t, "<presence/>")
	pad := strings.Repeat("p", 2000)
	n := 0
	send := func() string {
		t.Helper()
		n++
		id := fmt.Sprintf("m%d", n)
		a.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>full %d %s</body></message>", bob, id, n, pad))
		return stanzaID(b.Expect(t, "message "+id, isMessage(id)), bob)
	}
	acked := map[string]bool{} // bob's stanza-ids
	if sid := send(); sid == "" {
		t.Fatal("history is on but the first message has no stanza-id")
	} else {
		acked[sid] = true
	}

	filler := fill(t, data, reserve+int64(size(t, 2, 16))<<20)
	for sid := send(); sid != ""; sid = send() {
		acked[sid] = true
		if !s.Running() {
			t.Fatalf("the server died as the disk filled; log:\n%s", tail(s.Log(), 6000))
		}
		if n > 100000 {
			t.Fatal("the disk never filled up")
		}
	}
	full := n
	// Routing goes on with the disk full; nothing is claimed archived.
	for range 20 {
		if sid := send(); sid != "" {
			t.Fatalf("message %d claims to be archived (%s) with the disk full", n, sid)
		}
	}
	pingServer(t, a, "full")
	if !strings.Contains(s.Log(), "free disk space below the reserve") {
		t.Fatal("the log does not say why messages are not archived")
	}

	// Space comes back, and so does archiving, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, 30*time.Second, func() error {
		if sid := send(); sid == "" {
			return fmt.Errorf("message %d not archived after space came back", n)
		} else {
			acked[sid] = true
		}
		return nil
	})
	summary(t, "%d messages archived before the disk was full, %d acknowledged in all, %d sent", full-1, len(acked), n)

	// Every acknowledged message is in bob's archive.
	inArchive := map[string]bool{}
	for _, m := range mamAll(t, b) {
		inArchive[m.id] = true
	}
	for sid := range acked {
		if !inArchive[sid] {
			t.Fatalf("message %s was acknowledged as archived but is not in bob's archive", sid)
		}
	}
	if !s.Running() {
		t.Fatal("the server died")
	}
	s.Stop()
	events := readWholeStore(t, filepath.Join(data, "events"))
	t.Logf("the store reopened and read %d events back", events)
}
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
