#!/usr/bin/perl
# scripts/update-script.pl PIECE...: prints the part of an update script
# (gsb--A--B.sql) that the Makefile generates from the install pieces
# (src/sql/NN_*.sql): every statement of the pieces that can run again over
# an installed extension and leave it as a fresh install would, in the
# pieces' order:
#   CREATE FUNCTION / PROCEDURE  -> CREATE OR REPLACE FUNCTION / PROCEDURE
#   CREATE VIEW                  -> CREATE OR REPLACE VIEW
#   CREATE TRIGGER               -> CREATE OR REPLACE TRIGGER
#   GRANT, REVOKE, COMMENT ON    -> as written
# Every other statement (tables, columns, sequences, indexes, types, event
# triggers, rows, DO blocks, ALTER, pg_extension_config_dump ...) is left out,
# and named in a comment: the hand-written migration pieces
# (src/sql/update/A--B.before.sql, .after.sql) do what it needs on an
# installed extension. The Makefile says the rule; README.md "Upgrading".
#
# Statements end at a `;` outside quotes ('...', "...", $tag$...$tag$) and
# comments (-- and /* */); psql meta-command lines (\echo ... \quit) are
# dropped. Uses nothing beyond perl-base (strict, warnings).
use strict;
use warnings;

# split_statements($text): ([leading comments, statement text], ...), the
# statement with its terminating `;`; a trailing comment block is returned
# with an empty statement.
sub split_statements
{
	my ($text) = @_;
	my @out;
	my ($cur, $i, $n) = ('', 0, length $text);
	my $at_line_start = 1;
	while ($i < $n)
	{
		my $c = substr($text, $i, 1);
		if ($at_line_start && $c eq '\\' && code_of($cur) eq '')
		{
			# A psql meta-command line: not SQL, never re-run.
			my $e = index($text, "\n", $i);
			$e = $n - 1 if $e < 0;
			$i = $e + 1;
			next;
		}
		$at_line_start = 0;
		if ($c eq '-' && substr($text, $i, 2) eq '--')
		{
			my $e = index($text, "\n", $i);
			$e = $n - 1 if $e < 0;
			$cur .= substr($text, $i, $e - $i + 1);
			$i = $e + 1;
			$at_line_start = 1;
			next;
		}
		if ($c eq '/' && substr($text, $i, 2) eq '/*')
		{
			my ($depth, $j) = (1, $i + 2);
			while ($j < $n && $depth > 0)
			{
				if (substr($text, $j, 2) eq '/*') { $depth++; $j += 2; }
				elsif (substr($text, $j, 2) eq '*/') { $depth--; $j += 2; }
				else { $j++; }
			}
			die "update-script.pl: unterminated /* comment\n" if $depth;
			$cur .= substr($text, $i, $j - $i);
			$i = $j;
			next;
		}
		if ($c eq "'" || $c eq '"')
		{
			# E'...' strings: a backslash escapes the next character.
			my $escapes = $c eq "'" && $i > 0 && substr($text, $i - 1, 1) =~ /[eE]/
			  && ($i < 2 || substr($text, $i - 2, 1) !~ /\w/);
			my $j = $i + 1;
			while (1)
			{
				die "update-script.pl: unterminated $c quote\n" if $j >= $n;
				my $d = substr($text, $j, 1);
				if ($escapes && $d eq '\\') { $j += 2; next; }
				if ($d eq $c)
				{
					if (substr($text, $j + 1, 1) eq $c) { $j += 2; next; }
					last;
				}
				$j++;
			}
			$cur .= substr($text, $i, $j - $i + 1);
			$i = $j + 1;
			next;
		}
		if ($c eq '$' && substr($text, $i) =~ /^(\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$)/
			&& ($i == 0 || substr($text, $i - 1, 1) !~ /[A-Za-z0-9_]/))
		{
			my $tag = $1;
			my $e = index($text, $tag, $i + length $tag);
			die "update-script.pl: unterminated $tag quote\n" if $e < 0;
			$cur .= substr($text, $i, $e + length($tag) - $i);
			$i = $e + length $tag;
			next;
		}
		$cur .= $c;
		$i++;
		$at_line_start = 1 if $c eq "\n";
		if ($c eq ';')
		{
			push @out, $cur;
			$cur = '';
		}
	}
	push @out, $cur if $cur =~ /\S/;
	return @out;
}

# The statement's code without its leading comments and blank lines.
sub code_of
{
	my ($stmt) = @_;
	my $s = $stmt;
	1 while $s =~ s/\A\s+// || $s =~ s/\A--[^\n]*\n?// || $s =~ s{\A/\*.*?\*/}{}s;
	return $s;
}

my %rewrite = (
	FUNCTION => 'CREATE OR REPLACE FUNCTION',
	PROCEDURE => 'CREATE OR REPLACE PROCEDURE',
	VIEW => 'CREATE OR REPLACE VIEW',
	TRIGGER => 'CREATE OR REPLACE TRIGGER',
);

die "usage: update-script.pl PIECE...\n" unless @ARGV;
for my $piece (@ARGV)
{
	open(my $fh, '<', $piece) or die "update-script.pl: $piece: $!\n";
	my $text = do { local $/; <$fh> };
	close $fh;
	print "\n-- ---- from $piece ----\n";
	for my $stmt (split_statements($text))
	{
		my $code = code_of($stmt);
		next if $code eq '';
		my $comments = substr($stmt, 0, length($stmt) - length($code));
		if ($code =~ /\ACREATE\s+(?:OR\s+REPLACE\s+)?(FUNCTION|PROCEDURE|VIEW|TRIGGER)\b/i)
		{
			my $kind = uc $1;
			$code =~ s/\ACREATE\s+(?:OR\s+REPLACE\s+)?\w+/$rewrite{$kind}/i;
			print $comments, $code;
		}
		elsif ($code =~ /\A(?:GRANT|REVOKE|COMMENT\s+ON)\b/i)
		{
			print $comments, $code;
		}
		else
		{
			my ($first) = $code =~ /\A([^\n]*)/;
			$first = substr($first, 0, 100) . ' ...' if length $first > 100;
			print "\n-- not re-run (a migration piece's job): $first\n";
		}
	}
	print "\n";
}
