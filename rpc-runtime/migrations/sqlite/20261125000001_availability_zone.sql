-- The availability zone a service declares (nova derives a compute's from aggregates; this
-- registry records what the service says, so a service list can show it).
ALTER TABLE services ADD COLUMN availability_zone VARCHAR(255);
