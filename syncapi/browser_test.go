package syncapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"verlauf.im/verlauf/archive"
	"verlauf.im/verlauf/domain"
	"verlauf.im/verlauf/userdata"
)

// console collects what the page reports as errors: console.error,
// uncaught exceptions, and the browser's own log entries, which is where
// CSP violations and failed loads appear.
type console struct {
	mu       sync.Mutex
	problems []string
}

func (c *console) add(s string) {
	c.mu.Lock()
	c.problems = append(c.problems, s)
	c.mu.Unlock()
}

func (c *console) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// TestWebBrowser drives the web page in headless Chromium: log in, read
// a conversation, turn history off, download the export, forget, delete
// the account, with the page's CSP in force and no console error.
func TestWebBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("the browser test needs Debian's chromium package (apt-get install chromium): %v", err)
	}
	e := newEnv(t, t.TempDir(), Config{})
	alice := e.register("alice@example.org", "correct horse")
	bg := context.Background()
	if _, err := e.arch.SetPrefs(bg, alice, domain.ArchiveAlways, nil, nil); err != nil {
		t.Fatal(err)
	}
	// Seeded through the archive while alice is offline; her login
	// indexes them.
	e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "hello from bob", minute(1))
	e.archiveMsg(alice, "bob@example.org", domain.DirectionOut, "hi bob", minute(2))
	e.archiveMsg(alice, "bob@example.org", domain.DirectionIn, "&lt;script&gt;alert(1)&lt;/script&gt;", minute(3))

	// Trust the test server's key, and nothing else that fails
	// verification.
	spki := sha256.Sum256(e.ts.Certificate().RawSubjectPublicKeyInfo)
	downloads := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // the tests run as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(bg, opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	// A guard against hanging, not a timing assertion.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	var con console
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				con.add("console." + string(ev.Type) + ": " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			con.add("exception: " + msg)
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
				con.add(fmt.Sprintf("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	})
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	downloaded := make(chan string, 1)
	err = chromedp.ListenBrowser(ctx, func(ev any) {
		if p, ok := ev.(*cdpbrowser.EventDownloadProgress); ok && p.State == cdpbrowser.DownloadProgressStateCompleted {
			select {
			case downloaded <- p.GUID:
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}

	base := e.ts.URL
	// Each step has its own bound, so that a failed one still leaves time
	// to show the page it stopped on.
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v\nconsole: %q\npage %s:\n%s", step, err, con.all(), loc, html)
		}
	}
	text := func(sel chromedp.ID) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}

	// Log in; the account page lists the conversation.
	do("log in",
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("login-jid")),
		chromedp.SendKeys(chromedp.ID("login-jid"), "alice@example.org"),
		chromedp.SendKeys(chromedp.ID("login-password"), "correct horse"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("conversations")),
	)
	if c := text("conversations"); !strings.Contains(c, "bob@example.org") || !strings.Contains(c, "<script>alert(1)</script>") {
		t.Errorf("conversation list %q lacks bob's conversation and its last message as text", c)
	}

	// The conversation view shows the messages, the markup as text.
	do("read the conversation",
		chromedp.Click(chromedp.CSS("a.partner")),
		chromedp.WaitVisible(chromedp.ID("messages")),
	)
	messages := text("messages")
	for _, want := range []string{"hello from bob", "hi bob", "<script>alert(1)</script>"} {
		if !strings.Contains(messages, want) {
			t.Errorf("conversation %q lacks %q", messages, want)
		}
	}

	// History off: the page and the store agree.
	do("turn history off",
		chromedp.Click(chromedp.ID("back")),
		chromedp.WaitVisible(chromedp.ID("history-off")),
		chromedp.Click(chromedp.ID("history-off")),
		chromedp.WaitVisible(chromedp.ID("history-on")),
	)
	if n := text("notice"); !strings.Contains(n, "History is off") {
		t.Errorf("notice %q", n)
	}
	if p, err := e.arch.Prefs(bg, alice); err != nil || p.Default != domain.ArchiveNever {
		t.Errorf("prefs in the store after turning history off: %+v, %v", p, err)
	}

	// The export downloads with the session cookie and is whole.
	do("download the export", chromedp.Click(chromedp.ID("export-jsonl")))
	select {
	case guid := <-downloaded:
		raw, err := os.ReadFile(filepath.Join(downloads, guid))
		if err != nil {
			t.Fatal(err)
		}
		m, err := userdata.Verify(bytes.NewReader(raw))
		if err != nil || m.Counts[userdata.KindMessage] != 3 || m.User != "alice@example.org" {
			t.Errorf("downloaded export: %+v, %v", m, err)
		}
	case <-ctx.Done():
		t.Fatalf("no download: %v", ctx.Err())
	}

	// Forget everything: the page shows no message any more.
	do("forget",
		chromedp.Click(chromedp.ID("forget-all")),
		chromedp.Click(chromedp.ID("forget-submit")),
		chromedp.WaitVisible(chromedp.ID("no-conversations")),
	)
	if n := text("notice"); !strings.Contains(n, "Forgotten: 3 messages.") {
		t.Errorf("notice %q", n)
	}
	page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "hello from bob") || strings.Contains(page, "bob@example.org") {
		t.Errorf("the page still shows the conversation: %q", page)
	}
	if pg, err := e.arch.Query(bg, alice, archive.Query{Max: 10}); err != nil || len(pg.Messages) != 0 {
		t.Errorf("archive after forget: %d messages, %v", len(pg.Messages), err)
	}
	do("the conversation view is empty",
		chromedp.Navigate(base+"/account/conversation?with=bob@example.org"),
		chromedp.WaitVisible(chromedp.ID("no-messages")),
	)

	// Delete: the button waits for the JID (the page's script, which
	// runs only if the CSP lets it), then the account is gone.
	do("open the account page",
		chromedp.Navigate(base+"/account/"),
		chromedp.WaitVisible(chromedp.ID("delete-jid")),
	)
	before, err := chromedp.Run(ctx, chromedp.JavascriptAttribute[bool](chromedp.ID("delete-submit"), "disabled"))
	if err != nil {
		t.Fatal(err)
	}
	do("type the JID",
		chromedp.SendKeys(chromedp.ID("delete-jid"), "alice@example.org"),
		chromedp.SendKeys(chromedp.ID("delete-password"), "correct horse"),
	)
	after, err := chromedp.Run(ctx, chromedp.JavascriptAttribute[bool](chromedp.ID("delete-submit"), "disabled"))
	if err != nil {
		t.Fatal(err)
	}
	if !before || after {
		t.Errorf("delete button disabled before typing the JID: %v, after: %v (want true, false)", before, after)
	}
	do("delete the account",
		chromedp.Click(chromedp.ID("delete-submit")),
		chromedp.WaitVisible(chromedp.ID("deleted")),
	)
	if ok, err := e.acc.Exists(bg, alice); err != nil || ok {
		t.Errorf("account exists after deletion: %v, %v", ok, err)
	}

	if p := con.all(); len(p) != 0 {
		t.Errorf("console errors: %q", p)
	}

	// The listener does catch CSP violations: an inline script is
	// refused and reported.
	ran, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.createElement("script"); s.textContent = "window.inlineRan = true"; document.body.appendChild(s); return window.inlineRan === true; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("an inline script ran despite the CSP")
	}
	waitFor(t, func() bool {
		for _, p := range con.all() {
			if strings.Contains(p, "Content Security Policy") {
				return true
			}
		}
		return false
	})
}
