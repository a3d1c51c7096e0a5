// make_corpus.cpp: writes the protocol fuzzer's seed corpus (seeds.hpp) to a
// directory, one file per seed: `make fuzz-corpus` writes test/fuzz/corpus/.
//
// It refuses to write a seed that the reader does not accept, so the corpus
// starts from valid messages and the fuzzer mutates from there.
#include "seeds.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace gsb::protocol;

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
        return 2;
    }
    std::filesystem::path dir(argv[1]);
    std::filesystem::create_directories(dir);
    for (const auto &[name, bytes] : seeds::Corpus()) {
        try {
            XLogData xlog;
            Keepalive keepalive;
            Message msg;
            if (bytes[0] == 'w' || bytes[0] == 'k') {
                if (ParseCopyData(bytes, xlog, keepalive) == CopyKind::kXLogData)
                    Decode(xlog.payload, msg);
            } else {
                Decode(bytes, msg);
            }
        } catch (const ProtocolError &e) {
            std::fprintf(stderr, "seed %s is not valid: %s\n", name.c_str(), e.what());
            return 1;
        }
        std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        if (!out) {
            std::fprintf(stderr, "cannot write %s\n", (dir / name).c_str());
            return 1;
        }
    }
    return 0;
}
