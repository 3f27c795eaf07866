package sample

import (
	"strconv"
	"strings"
	"time"
)

// Streams separate the random sequences of the objects.
const (
	streamContacts uint64 = 1
	streamOrders   uint64 = 2
)

// mix64 is the splitmix64 finalizer.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rng is a splitmix64 generator.
type rng struct{ s uint64 }

// newRNG returns the generator of record i of a stream: a pure function of
// (seed, stream, i), so any record can be generated on its own.
func newRNG(seed int64, stream uint64, i int64) rng {
	return rng{s: mix64(uint64(seed) ^ mix64(stream<<56^uint64(i)))}
}

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

// intn returns a number in [0, n).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// tables are the word lists records are made of. They are built by New and
// never modified.
type tables struct {
	first, last           []string // capitalised
	firstLower, lastLower []string
	companies             []string
	currencies            []string
	statuses              []string
}

func newTables() *tables {
	t := &tables{
		first: []string{
			"Ada", "Alan", "Alice", "Amara", "Andre", "Anna", "Ben", "Bruno", "Carla", "Chen",
			"Chloe", "Daniel", "Diego", "Elena", "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo",
			"Ines", "Ivan", "Jade", "James", "Julia", "Kenji", "Lea", "Leo", "Lina", "Lucas",
			"Maya", "Mia", "Nadia", "Noah", "Nora", "Omar", "Oscar", "Paula", "Priya", "Quinn",
			"Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Theo", "Uma", "Victor", "Wei",
			"Yara", "Yusuf", "Zoe", "Ravi", "Ingrid", "Mateo", "Aisha", "Liam", "Olga", "Pedro",
			"Kofi", "Eva", "Hiro", "Lucia",
		},
		last: []string{
			"Abbott", "Adeyemi", "Alvarez", "Andersen", "Bauer", "Becker", "Bianchi", "Brown", "Castro", "Chen",
			"Costa", "Dubois", "Eriksson", "Fischer", "Garcia", "Gupta", "Haddad", "Hansen", "Ito", "Jensen",
			"Kim", "Kowalski", "Larsen", "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura",
			"Nguyen", "Novak", "Okafor", "Olsen", "Patel", "Perez", "Petrov", "Quinn", "Rossi", "Sato",
			"Schmidt", "Silva", "Singh", "Smith", "Sousa", "Tanaka", "Taylor", "Torres", "Urban", "Vargas",
			"Wagner", "Walsh", "Weber", "Wilson", "Xu", "Yamamoto", "Young", "Zhang", "Zimmer", "Khan",
			"Mensah", "Ortiz", "Berg", "Ruiz",
		},
		companies: []string{
			"Acme Corp", "Globex", "Initech", "Umbrella Labs", "Hooli", "Stark Industries", "Wayne Enterprises",
			"Soylent", "Cyberdyne", "Tyrell", "Wonka Industries", "Vandelay Industries", "Massive Dynamic",
			"Aperture Science", "Black Mesa", "Oscorp", "Pied Piper", "Dunder Mifflin", "Monarch Solutions",
			"Blue Sun", "Nakatomi Trading", "Gringotts", "Prestige Worldwide", "Sterling Cooper",
			"Bluth Company", "Los Pollos Hermanos", "Virtucon", "Gekko and Co", "Ollivanders", "Krusty Krab",
			"Vehement Capital", "Rekall",
		},
		currencies: []string{"USD", "EUR", "GBP", "CAD", "JPY", "AUD"},
		statuses:   []string{"pending", "paid", "shipped", "delivered", "refunded", "cancelled"},
	}
	t.firstLower = lowerAll(t.first)
	t.lastLower = lowerAll(t.last)
	return t
}

func lowerAll(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}

// generator produces the records of one config. Strings in the tables are
// plain ASCII without quotes or backslashes, so they are appended to JSON
// without escaping.
type generator struct {
	t     *tables
	count int64
	seed  int64
	base  time.Time
}

// updatedAt is the updated_at of the record at index i (0-based).
func (g *generator) updatedAt(i int64) time.Time {
	return g.base.Add(time.Duration(i) * time.Second)
}

// contactNames returns the name indexes of the contact at index i.
func (g *generator) contactNames(i int64) (r rng, first, last int) {
	r = newRNG(g.seed, streamContacts, i)
	first = r.intn(len(g.t.first))
	last = r.intn(len(g.t.last))
	return r, first, last
}

// appendID appends prefix and the 1-based number of index i, zero-padded to 8
// digits: c_00000001.
func appendID(b []byte, prefix string, i int64) []byte {
	b = append(b, prefix...)
	n := i + 1
	for d := int64(10_000_000); d > 1 && n < d; d /= 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, n, 10)
}

// appendEmail appends the email of the contact at index i:
// first.last.<number>@example.com.
func (g *generator) appendEmail(b []byte, i int64, first, last int) []byte {
	b = append(b, g.t.firstLower[first]...)
	b = append(b, '.')
	b = append(b, g.t.lastLower[last]...)
	b = append(b, '.')
	b = strconv.AppendInt(b, i+1, 10)
	return append(b, "@example.com"...)
}

func appendDigits(b []byte, n uint64, width int) []byte {
	var tmp [20]byte
	for j := width - 1; j >= 0; j-- {
		tmp[j] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[:width]...)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendContact appends the JSON fields of the contact at index i.
func (g *generator) appendContact(b []byte, i int64) []byte {
	r, first, last := g.contactNames(i)
	b = append(b, `{"id":"`...)
	b = appendID(b, "c_", i)
	b = append(b, `","email":"`...)
	b = g.appendEmail(b, i, first, last)
	b = append(b, `","first_name":"`...)
	b = append(b, g.t.first[first]...)
	b = append(b, `","last_name":"`...)
	b = append(b, g.t.last[last]...)
	b = append(b, `","phone":"+1-555-`...)
	b = appendDigits(b, r.next()%1000, 3)
	b = append(b, '-')
	b = appendDigits(b, r.next()%10000, 4)
	b = append(b, `","company":"`...)
	b = append(b, g.t.companies[r.intn(len(g.t.companies))]...)
	b = append(b, `","updated_at":`...)
	b = appendTime(b, g.updatedAt(i))
	return append(b, '}')
}

// appendOrder appends the JSON fields of the order at index i. Its customer
// is one of the contacts of the same config.
func (g *generator) appendOrder(b []byte, i int64) []byte {
	r := newRNG(g.seed, streamOrders, i)
	customer := int64(r.next() % uint64(g.count))
	_, first, last := g.contactNames(customer)
	cents := 500 + r.next()%200_000
	updated := g.updatedAt(i)
	created := updated.Add(-time.Duration(r.next()%(30*24*3600)) * time.Second)

	b = append(b, `{"id":"`...)
	b = appendID(b, "o_", i)
	b = append(b, `","customer_email":"`...)
	b = g.appendEmail(b, customer, first, last)
	b = append(b, `","total":`...)
	b = strconv.AppendUint(b, cents/100, 10)
	b = append(b, '.')
	b = appendDigits(b, cents%100, 2)
	b = append(b, `,"currency":"`...)
	b = append(b, g.t.currencies[r.intn(len(g.t.currencies))]...)
	b = append(b, `","status":"`...)
	b = append(b, g.t.statuses[r.intn(len(g.t.statuses))]...)
	b = append(b, `","created_at":`...)
	b = appendTime(b, created)
	b = append(b, `,"updated_at":`...)
	b = appendTime(b, updated)
	return append(b, '}')
}
