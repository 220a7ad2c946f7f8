// Threading is injected, never global. Kernels that split work take a
// ParallelFor: a callable that runs body(begin, end) over disjoint ranges
// covering [0, n) and returns when all have finished. Results never depend on
// how the ranges are cut (each task writes its own rows), so output bytes are
// the same for any thread count.
//
// blockquant ships two: SerialFor (the default: the calling thread does all)
// and ThreadPool (std::thread workers owned by the caller). Runtimes with a
// scheduler of their own wrap it in a ParallelFor instead.
#ifndef BLOCKQUANT_PARALLEL_H_
#define BLOCKQUANT_PARALLEL_H_

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace blockquant {
inline namespace v0 {

using RangeBody = std::function<void(size_t begin, size_t end)>;
using ParallelFor = std::function<void(size_t n, const RangeBody& body)>;

// Runs everything on the calling thread.
inline ParallelFor SerialFor() {
  return [](size_t n, const RangeBody& body) {
    if (n > 0) body(0, n);
  };
}

// A fixed set of worker threads. The calling thread takes part, so a pool of
// N threads starts N - 1 workers. One Run at a time; Run is not reentrant.
// An exception thrown by body on any thread is rethrown by Run on the caller
// once every range has finished.
class ThreadPool {
 public:
  explicit ThreadPool(size_t num_threads = std::thread::hardware_concurrency())
      : num_threads_(std::max<size_t>(1, num_threads)) {
    for (size_t i = 1; i < num_threads_; ++i) {
      workers_.emplace_back([this] { WorkerLoop(); });
    }
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t NumThreads() const { return num_threads_; }

  // Splits [0, n) into about 4 chunks per thread for load balance.
  void Run(size_t n, const RangeBody& body) {
    if (n == 0) return;
    if (num_threads_ == 1 || n == 1) {
      body(0, n);
      return;
    }
    const size_t chunks = std::min(n, num_threads_ * 4);
    {
      std::lock_guard<std::mutex> lock(mu_);
      body_ = &body;
      n_ = n;
      num_chunks_ = chunks;
      next_chunk_ = 0;
      pending_ = chunks;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    DrainChunks();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // A ParallelFor that runs on this pool; the pool must outlive it.
  ParallelFor AsParallelFor() {
    return [this](size_t n, const RangeBody& body) { Run(n, body); };
  }

 private:
  void DrainChunks() {
    for (;;) {
      size_t chunk;
      const RangeBody* body;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (body_ == nullptr || next_chunk_ >= num_chunks_) return;
        chunk = next_chunk_++;
        body = body_;
      }
      const size_t begin = n_ * chunk / num_chunks_;
      const size_t end = n_ * (chunk + 1) / num_chunks_;
      std::exception_ptr error;
      try {
        (*body)(begin, end);
      } catch (...) {
        error = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (error && !error_) error_ = error;
      if (--pending_ == 0) done_.notify_all();
    }
  }

  void WorkerLoop() {
    size_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      DrainChunks();
    }
  }

  const size_t num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const RangeBody* body_ = nullptr;
  size_t n_ = 0, num_chunks_ = 0, next_chunk_ = 0, pending_ = 0;
  size_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace v0
}  // namespace blockquant

#endif  // BLOCKQUANT_PARALLEL_H_
