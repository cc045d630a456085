package bus

import (
	"errors"
	"testing"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

func TestWatermillLoggerLevels(t *testing.T) {
	tests := []struct {
		level logrus.Level
		log   func(watermillLogger)
		want  int // entries written
	}{
		{logrus.InfoLevel, func(l watermillLogger) { l.Error("e", errors.New("x"), nil) }, 1},
		{logrus.InfoLevel, func(l watermillLogger) { l.Info("i", nil) }, 0},
		{logrus.InfoLevel, func(l watermillLogger) { l.Trace("t", watermill.LogFields{"k": 1}) }, 0},
		{logrus.DebugLevel, func(l watermillLogger) { l.Info("i", nil) }, 1},
		{logrus.DebugLevel, func(l watermillLogger) { l.Debug("d", nil) }, 0},
		{logrus.TraceLevel, func(l watermillLogger) { l.Debug("d", nil) }, 1},
		{logrus.TraceLevel, func(l watermillLogger) { l.Trace("t", watermill.LogFields{"k": 1}) }, 1},
		{logrus.ErrorLevel, func(l watermillLogger) { l.With(watermill.LogFields{"a": 1}).Error("e", nil, nil) }, 1},
	}
	for _, tt := range tests {
		logger, hook := test.NewNullLogger()
		logger.SetLevel(tt.level)
		tt.log(watermillLogger{logrus.NewEntry(logger)})
		if got := len(hook.AllEntries()); got != tt.want {
			t.Errorf("level %s: %d entries, want %d", tt.level, got, tt.want)
		}
	}
}
