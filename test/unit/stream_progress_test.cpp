// stream_progress_test.cpp: unit tests of the apply worker's stream position
// bookkeeping (bgworker/stream_progress.hpp): what it may confirm to the
// peer's slot. They need no server; how the worker feeds it is tested by the
// TAP tests (t/313_retry_exactly_once.pl).
#include "stream_progress.hpp"

#include <gtest/gtest.h>

namespace gsb {
namespace {

using Lsn = StreamProgress::Lsn;

TEST(StreamProgress, StartsAtTheDurableStart) {
    StreamProgress p;
    p.Reset(100);
    EXPECT_EQ(p.received(), 100u);
    EXPECT_EQ(p.Flushed(0), 100u);
    EXPECT_TRUE(p.idle());
}

TEST(StreamProgress, KeepaliveWhileIdleIsConfirmed) {
    StreamProgress p;
    p.Reset(100);
    p.Processed(500);
    EXPECT_EQ(p.Flushed(0), 500u);
}

TEST(StreamProgress, ReceivedButNotAppliedIsNotConfirmed) {
    // The COMMIT of a large transaction travels in a message of its own: it is
    // received (its LSN is the commit's end) before it is applied.
    StreamProgress p;
    p.Reset(100);
    p.BeginTransaction();
    p.Received(900);
    EXPECT_EQ(p.received(), 900u);
    EXPECT_EQ(p.Flushed(10000), 100u);
    EXPECT_FALSE(p.idle());
}

TEST(StreamProgress, ACommitIsConfirmedOnlyOnceFlushedHere) {
    StreamProgress p;
    p.Reset(100);
    p.BeginTransaction();
    p.Committed(/*remote_end=*/200, /*local_end=*/5000);
    EXPECT_EQ(p.Flushed(4999), 100u) << "the local commit is not on disk yet";
    EXPECT_FALSE(p.idle());
    EXPECT_EQ(p.Flushed(5000), 200u);
    EXPECT_TRUE(p.idle());
}

TEST(StreamProgress, PendingCommitsAreReleasedInOrder) {
    StreamProgress p;
    p.Reset(100);
    p.BeginTransaction();
    p.Committed(200, 5000);
    p.BeginTransaction();
    p.Committed(300, 6000);
    p.BeginTransaction();
    p.Committed(400, 7000);
    EXPECT_EQ(p.Flushed(6500), 300u);
    // A keepalive past everything: still only what is flushed.
    p.Processed(1000);
    EXPECT_EQ(p.Flushed(6500), 300u);
    EXPECT_EQ(p.Flushed(7000), 1000u) << "nothing pending: the keepalive's position counts";
}

TEST(StreamProgress, AnOpenTransactionHoldsBackKeepalives) {
    StreamProgress p;
    p.Reset(100);
    p.BeginTransaction();
    p.Processed(150); // a keepalive sent while the transaction is decoded
    EXPECT_EQ(p.Flushed(10000), 100u);
    p.Committed(400, 5000);
    EXPECT_EQ(p.Flushed(10000), 400u);
}

TEST(StreamProgress, ACommitInTheMiddleOfABatchConfirmsOnlyItself) {
    // Protocol 2: one CopyData holds several messages; the batch's position is
    // processed only once all of it was applied.
    StreamProgress p;
    p.Reset(100);
    p.Received(900); // the batch arrives
    p.BeginTransaction();
    p.Committed(300, 5000); // first transaction of the batch
    EXPECT_EQ(p.Flushed(10000), 300u);
    p.BeginTransaction(); // the second one fails to apply: no Processed(900)
    EXPECT_EQ(p.Flushed(10000), 300u);
}

TEST(StreamProgress, AFailedAttemptLeavesNothingBehind) {
    StreamProgress p;
    p.Reset(100);
    p.BeginTransaction();
    p.Committed(200, 5000); // committed but not flushed
    p.BeginTransaction();
    p.Received(900); // the failed transaction's COMMIT, never applied
    // The worker reconnects from the origin's progress, flushed: 200.
    p.Reset(200);
    EXPECT_EQ(p.received(), 200u);
    EXPECT_FALSE(p.in_transaction());
    EXPECT_TRUE(p.idle());
    EXPECT_EQ(p.Flushed(0), 200u);
    EXPECT_EQ(p.Flushed(100000), 200u) << "the failed transaction's end is never confirmed";
}

TEST(StreamProgress, NeverGoesBack) {
    StreamProgress p;
    p.Reset(100);
    p.Processed(500);
    EXPECT_EQ(p.Flushed(0), 500u);
    p.Processed(300);
    p.Received(200);
    EXPECT_EQ(p.received(), 500u);
    EXPECT_EQ(p.Flushed(0), 500u);
}

} // namespace
} // namespace gsb
