-- gsb.init_site, its errors, and ids that cannot collide across sites.
SELECT try($q$SELECT gsb.init_site('sjc', 'leader')$q$);
SELECT try($q$SELECT gsb.init_site('sjc', NULL)$q$);
SELECT try($q$SELECT gsb.init_site('San Jose', 'primary')$q$);
SELECT try($q$SELECT gsb.init_site('', 'primary')$q$);
SELECT try($q$SELECT gsb.init_site(NULL, 'primary')$q$);

SELECT gsb.init_site('sjc', 'primary');
SELECT gsb.site_name(), gsb.site_role();
-- Calling it again with the same values changes nothing; other values fail.
SELECT gsb.init_site('sjc', 'primary');
SELECT try($q$SELECT gsb.init_site('ams', 'backup')$q$);

-- Ids: the site's number (primary 1, backup 2) in the low four bits, so the
-- two sites' ids never collide.
SELECT gsb.create_account('ann@example.com', 'Ann') AS ann \gset
SELECT gsb.create_account('bob@example.com', 'Bob') AS bob \gset
SELECT :ann % 16 AS ann_site, :bob % 16 AS bob_site, :bob > :ann AS increasing;
INSERT INTO gsb.accounts (email) VALUES ('carl@example.com') RETURNING id % 16 AS site;

-- Meetings: the teleconference number is chosen once and replicated.
SELECT gsb.schedule_meeting(:ann, 'Weekly', '2030-01-07 17:00+00') AS m1 \gset
SELECT gsb.schedule_meeting(:ann, 'Dial-in', '2030-01-08 17:00+00', '+46-8-555-0100') AS m2 \gset
SELECT id % 16 AS site, account_id = :ann AS owner, title, starts_at, tele_number ~ '^\+1-888-\d{7}$' AS generated_number,
       status, hosted_site, created_site
  FROM gsb.meetings WHERE id = :m1;
SELECT tele_number FROM gsb.meetings WHERE id = :m2;
SELECT try($q$SELECT gsb.schedule_meeting(-1, 'Nobody', '2030-01-07 17:00+00')$q$);
SELECT try(format($q$SELECT gsb.schedule_meeting(%s, 'When?', NULL)$q$, :ann));
SELECT try($q$SELECT gsb.create_account('', 'Nameless')$q$);
SELECT try($q$SELECT gsb.create_account(NULL, 'Nameless')$q$);
