package hubspot

import (
	"encoding/json"
	"strconv"

	"github.com/synchron-io/synchron/sdk"
)

// objectDef describes one HubSpot object type the connector syncs.
type objectDef struct {
	name string
	// lastModified is the search property of the last change.
	lastModified string
	// natural is the unique property used to upsert (contacts: email).
	natural string
	obj     sdk.Object
}

func str(name, desc string) sdk.Field {
	return sdk.Field{Name: name, Type: sdk.TypeString, Description: desc}
}

func ro(f sdk.Field) sdk.Field { f.ReadOnly = true; return f }

func typed(name, typ, desc string) sdk.Field {
	return sdk.Field{Name: name, Type: typ, Description: desc}
}

func objects() []objectDef {
	id := ro(str("id", "HubSpot record id (hs_object_id)."))
	created := ro(typed("createdate", sdk.TypeDateTime, "When the record was created."))
	mk := func(name, desc, lastMod, natural string, fields ...sdk.Field) objectDef {
		fs := append([]sdk.Field{id}, fields...)
		fs = append(fs, created, ro(typed(lastMod, sdk.TypeDateTime, "Last change of the record.")))
		return objectDef{name: name, lastModified: lastMod, natural: natural, obj: sdk.Object{
			Name: name, Description: desc, Fields: fs, IDField: "id", UpsertKey: natural,
			Readable: true, Writable: true, Incremental: true, Deletes: true,
		}}
	}
	return []objectDef{
		mk("contacts", "CRM contacts (people).", "lastmodifieddate", "email",
			str("email", "Email address; unique, used to upsert."),
			str("firstname", "First name."), str("lastname", "Last name."), str("phone", "Phone number."),
			str("company", "Company name."), str("website", "Website URL."), str("jobtitle", "Job title."),
			str("lifecyclestage", "Lifecycle stage (subscriber, lead, customer...)."),
			str("city", "City."), str("country", "Country.")),
		mk("companies", "CRM companies.", "hs_lastmodifieddate", "",
			str("name", "Company name."), str("domain", "Company domain."), str("industry", "Industry."),
			str("phone", "Phone number."), str("city", "City."), str("country", "Country."),
			typed("numberofemployees", sdk.TypeInteger, "Number of employees."),
			typed("annualrevenue", sdk.TypeNumber, "Annual revenue.")),
		mk("deals", "CRM deals.", "hs_lastmodifieddate", "",
			str("dealname", "Deal name."), typed("amount", sdk.TypeNumber, "Amount."),
			typed("closedate", sdk.TypeDateTime, "Close date."), str("pipeline", "Pipeline id."),
			str("dealstage", "Deal stage id."), str("hubspot_owner_id", "Owner id.")),
	}
}

func (c *Connector) object(name string) (objectDef, bool) {
	for _, o := range c.objects {
		if o.name == name {
			return o, true
		}
	}
	return objectDef{}, false
}

// properties are the HubSpot property names of an object (every field but id).
func (o objectDef) properties() []string {
	var ps []string
	for _, f := range o.obj.Fields {
		if f.Name != "id" {
			ps = append(ps, f.Name)
		}
	}
	return ps
}

// toFields converts a HubSpot record (string properties) into the object's
// fields as JSON, typed as declared; undeclared properties are dropped.
func (o objectDef) toFields(id string, props map[string]*string) json.RawMessage {
	m := map[string]any{"id": id}
	for _, f := range o.obj.Fields {
		if f.Name == "id" {
			continue
		}
		v, ok := props[f.Name]
		if !ok {
			continue
		}
		if v == nil || *v == "" {
			m[f.Name] = nil
			continue
		}
		switch f.Type {
		case sdk.TypeInteger:
			if n, err := strconv.ParseInt(*v, 10, 64); err == nil {
				m[f.Name] = n
				continue
			}
			if x, err := strconv.ParseFloat(*v, 64); err == nil {
				m[f.Name] = int64(x)
				continue
			}
		case sdk.TypeNumber:
			if x, err := strconv.ParseFloat(*v, 64); err == nil {
				m[f.Name] = x
				continue
			}
		}
		m[f.Name] = *v
	}
	b, _ := json.Marshal(m)
	return b
}

// toProperties converts written fields to HubSpot's string properties. The
// id and read-only fields are dropped; unknown fields are passed on (HubSpot
// rejects properties that do not exist, and the record is then rejected).
func (o objectDef) toProperties(fields json.RawMessage) (map[string]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(fields, &m); err != nil {
		return nil, err
	}
	props := make(map[string]string, len(m))
	for k, raw := range m {
		if f, ok := o.obj.Field(k); ok && f.ReadOnly {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case nil:
			props[k] = ""
		case string:
			props[k] = x
		case bool:
			props[k] = strconv.FormatBool(x)
		case float64:
			props[k] = string(raw)
		default:
			props[k] = string(raw)
		}
	}
	return props, nil
}
