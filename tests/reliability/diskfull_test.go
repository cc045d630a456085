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
// still do so cleanly: a sender who keeps history gets resource-constraint
// and the message is not delivered half-kept, no message is marked
// archived (stanza-id) that is not, the server stays up and keeps routing
// for users without history, archiving resumes once space is back, every
// message acknowledged as archived is in the archive, and the store
// reopens and reads every record.
func TestDiskFull(t *testing.T) {
	s := testserver.Start(t, testserver.Options{Extra: "[archive]\ndefault = \"always\"\n"})
	alice, bob, carol := addUser(t, s, "alice"), addUser(t, s, "bob"), addUser(t, s, "carol")
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
	// send has alice write to bob and reports bob's stanza-id, or that
	// alice's server refused the message with resource-constraint.
	send := func() (sid string, refused bool) {
		t.Helper()
		n++
		id := fmt.Sprintf("m%d", n)
		a.Send(t, fmt.Sprintf("<message to='%s' type='chat' id='%s'><body>full %d %s</body></message>", bob, id, n, pad))
		deadline := time.After(10 * time.Second)
		for {
			select {
			case el := <-b.In:
				if isMessage(id)(el) {
					return stanzaID(el, bob), false
				}
			case el := <-a.In:
				if el.Attr("id") == id && el.Attr("type") == "error" {
					if el.Child("error", "").Child("resource-constraint", "urn:ietf:params:xml:ns:xmpp-stanzas") == nil {
						t.Fatalf("message %s refused with %s, want resource-constraint", id, el)
					}
					return "", true
				}
			case <-deadline:
				t.Fatalf("message %s: neither delivered nor refused", id)
			}
		}
	}
	acked := map[string]bool{} // bob's stanza-ids
	if sid, refused := send(); sid == "" || refused {
		t.Fatal("history is on but the first message was not archived")
	} else {
		acked[sid] = true
	}

	// Carol keeps no history (set while the disk has room).
	c := login(t, s, carol)
	c.Send(t, "<iq type='set' id='p'><prefs xmlns='urn:xmpp:mam:2' default='never'><always/><never/></prefs></iq>")
	if r := c.ExpectID(t, "p"); r.Attr("type") != "result" {
		t.Fatalf("carol's prefs: %s", r)
	}

	filler := fill(t, data, reserve+int64(size(t, 2, 16))<<20)
	// Alice's and bob's copies are appended side by side; the disk can
	// cross the reserve between the two. Then alice's copy is kept and
	// the message reaches bob without his stanza-id (his archive could
	// not take it, as for carol below), and from then on alice's messages
	// are refused.
	crossing := ""
	for {
		sid, refused := send()
		if refused {
			break
		}
		if sid == "" {
			crossing = fmt.Sprintf("full %d ", n)
			break
		}
		acked[sid] = true
		if !s.Running() {
			t.Fatalf("the server died as the disk filled; log:\n%s", tail(s.Log(), 6000))
		}
		if n > 100000 {
			t.Fatal("the disk never filled up")
		}
	}
	full := n
	// With the disk full every message of a user who keeps history is
	// refused, never delivered as if archived.
	for range 20 {
		if sid, refused := send(); !refused {
			t.Fatalf("message %d was delivered (stanza-id %q) with the disk full", n, sid)
		}
	}
	// Routing goes on: carol keeps no history, her message reaches bob,
	// without a stanza-id since bob's archive cannot take it.
	c.Send(t, "<message to='"+bob+"' type='chat' id='c1'><body>from carol</body></message>")
	if sid := stanzaID(b.Expect(t, "carol's message", isMessage("c1")), bob); sid != "" {
		t.Fatalf("carol's message claims to be in bob's archive (%s) with the disk full", sid)
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
		sid, refused := send()
		if refused || sid == "" {
			return fmt.Errorf("message %d not archived after space came back", n)
		}
		acked[sid] = true
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
	if crossing != "" {
		// The message that crossed the reserve is in alice's archive.
		kept := false
		for _, m := range mamAll(t, a) {
			kept = kept || strings.HasPrefix(m.body, crossing)
		}
		if !kept {
			t.Fatalf("message %q reached bob without his stanza-id, and alice's archive lacks it", crossing)
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
