package store

import "time"

// Plan names, as stored in accounts.plan.
const (
	PlanIndividual = "individual"
	PlanTeam       = "team"
	PlanEnterprise = "enterprise"
)

// TrialPeriod is how long a new account is in trial.
const TrialPeriod = 14 * 24 * time.Hour

// Plan is one row of the plan table. Prices, quotas and seat counts join this
// table when billing lands; nothing else in the code may spell a plan limit.
type Plan struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// MinIntervalSeconds is the shortest refresh interval a workflow may have.
	MinIntervalSeconds int `json:"min_interval_seconds"`
	// MaxUsers is the number of users of an account (0: set by the seats
	// bought).
	MaxUsers int `json:"max_users"`
}

// Plans is the plan table, cheapest first.
func Plans() []Plan {
	return []Plan{
		{Name: PlanIndividual, Title: "Individual", MinIntervalSeconds: 15 * 60, MaxUsers: 1},
		{Name: PlanTeam, Title: "Team", MinIntervalSeconds: 5 * 60},
		{Name: PlanEnterprise, Title: "Enterprise", MinIntervalSeconds: 60},
	}
}

// PlanByName returns the named plan.
func PlanByName(name string) (Plan, bool) {
	for _, p := range Plans() {
		if p.Name == name {
			return p, true
		}
	}
	return Plan{}, false
}
