package main

import "testing"

func TestProcsFloor(t *testing.T) {
	tests := []struct {
		name     string
		current  int
		explicit bool
		want     int
	}{
		{"one core is raised", 1, false, minProcs},
		{"below the floor is raised", minProcs - 1, false, minProcs},
		{"at the floor is kept", minProcs, false, 0},
		{"many cores are kept", 64, false, 0},
		{"an explicit GOMAXPROCS is kept", 1, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := procsFloor(tt.current, tt.explicit); got != tt.want {
				t.Errorf("procsFloor(%d, %v) = %d, want %d", tt.current, tt.explicit, got, tt.want)
			}
		})
	}
}
