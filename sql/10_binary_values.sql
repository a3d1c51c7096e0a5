-- Binary values from the peer: the apply worker makes the commonest built-in
-- types directly (gsb::values::ReceiveDirect) and the rest through the type's
-- receive function. gsb.selftest_receive() makes a value both ways and fails
-- if the direct path makes a different datum or accepts bytes that the
-- receive function rejects. Each line says which path made the value.
CREATE FUNCTION recv(bytes bytea, typ regtype, typmod int DEFAULT -1) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    RETURN gsb.selftest_receive(bytes, typ, typmod);
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- Round trips through each type's send function.
SELECT recv(boolsend(true), 'bool'), recv(boolsend(false), 'bool'), recv('\x02', 'bool');
SELECT recv(int2send(v), 'int2') FROM unnest(ARRAY[0, 1, -1, 32767, -32768]::int2[]) v;
SELECT recv(int4send(v), 'int4') FROM unnest(ARRAY[0, -1, 2147483647, -2147483648]) v;
SELECT recv(int8send(v), 'int8')
  FROM unnest(ARRAY[0, -1, 9223372036854775807, -9223372036854775808]::int8[]) v;
SELECT recv(float4send(v), 'float4')
  FROM unnest(ARRAY['0', '-0', '1.5', 'NaN', 'Infinity', '-Infinity', '3.4e38', '1e-45']::float4[]) v;
SELECT recv(float8send(v), 'float8')
  FROM unnest(ARRAY['0', '-0', '3.141592653589793', 'NaN', 'Infinity', '-Infinity', '1.7976931348623157e308',
                    '5e-324']::float8[]) v;
SET timezone = 'Europe/Stockholm';
SELECT recv(timestamptz_send(v), 'timestamptz')
  FROM unnest(ARRAY['2026-11-26 10:00:00.123456+01', 'infinity', '-infinity', '4714-11-24 00:00:00+00 BC',
                    '294276-12-31 23:59:59.999999+00', '2000-01-01 00:00:00+00']::timestamptz[]) v;
SELECT recv(timestamp_send(v), 'timestamp')
  FROM unnest(ARRAY['2026-11-26 10:00:00.5', 'infinity', '-infinity', '4714-11-24 00:00:00 BC',
                    '294276-12-31 23:59:59.999999']::timestamp[]) v;
SELECT left(r, 30) AS r, length(r)
  FROM (SELECT recv(textsend(v), 'text') FROM unnest(ARRAY['', 'plain', 'Göteborg möte', '日本語',
                                                            repeat('x', 3000)]) v) s (r);
SELECT recv(uuid_send('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), 'uuid');

-- Typmods: timestamp(0) rounds (the receive function), varchar(n) checks the
-- length in characters (direct while the bytes fit, else the receive function).
SELECT recv(timestamp_send('2026-11-26 10:00:00.6'), 'timestamp', 0);
SELECT recv(timestamptz_send('2026-11-26 10:00:00.6+01'), 'timestamptz', 2);
SELECT recv(textsend('abcde'), 'varchar', 5 + 4), recv(textsend('abcdef'), 'varchar', 5 + 4);
SELECT recv(textsend('åäöåä'), 'varchar', 5 + 4), recv(textsend('åäöåäö'), 'varchar', 5 + 4);
SELECT recv(textsend('abc   '), 'varchar', 3 + 4);
SELECT recv(textsend('no limit'), 'varchar');

-- Bytes the receive functions reject: every one goes to the receive function
-- and fails there with its own error.
SELECT recv('\x0001', 'bool'), recv('', 'bool');
SELECT recv('\x00', 'int2'), recv('\x000000', 'int2');
SELECT recv('\x000000', 'int4'), recv('\x0000000000', 'int4');
SELECT recv('\x00000000000000', 'int8'), recv('\x000000000000000000', 'int8');
SELECT recv('\x000000', 'float4'), recv('\x00000000000000', 'float8');
SELECT recv('\x7ffffffffffffffe', 'timestamptz'), recv('\x8000000000000001', 'timestamptz');
SELECT recv('\x7ffffffffffffffe', 'timestamp'), recv('\x00000000000000', 'timestamp');
SELECT recv('\x7fffffffffffffff', 'timestamptz'), recv('\x8000000000000000', 'timestamp');
SELECT recv('\xc328', 'text'), recv('\x6100', 'text'), recv('\xff', 'varchar', 10);
SELECT recv('\x00112233445566778899aabbccddeeff00', 'uuid'), recv('\x0011', 'uuid');

-- Types without a direct path go through their receive functions.
SELECT recv(numeric_send(12.50), 'numeric'), recv(date_send('2026-11-26'), 'date'),
       recv(byteasend('\xdeadbeef'), 'bytea'), recv(jsonb_send('{"a": 1}'), 'jsonb');
CREATE DOMAIN small_int AS int4 CHECK (VALUE < 10);
SELECT recv(int4send(5), 'small_int'), recv(int4send(50), 'small_int');
RESET timezone;
DROP DOMAIN small_int;
DROP FUNCTION recv(bytea, regtype, int);
