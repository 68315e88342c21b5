/* spawn N PROGRAM [ARG...]: start PROGRAM N times in turn (posix_spawn, stdin/stdout/stderr on
   /dev/null, the caller's environment), wait for each, then print the CPU time and minor page
   faults per start that the children used (getrusage RUSAGE_CHILDREN). */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>

extern char **environ;

static double ms(struct timeval t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; }

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: spawn N PROGRAM [ARG...]\n");
    return 100;
  }
  int n = atoi(argv[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  for (int i = 0; i < n; i++) {
    pid_t p;
    int st;
    if (posix_spawn(&p, argv[2], &fa, 0, argv + 2, environ) != 0 || waitpid(p, &st, 0) < 0) {
      perror(argv[2]);
      return 111;
    }
  }
  struct rusage ru;
  getrusage(RUSAGE_CHILDREN, &ru);
  printf("%-44s %.3f ms CPU per start (user %.3f), %ld minor faults\n", argv[2],
         (ms(ru.ru_utime) + ms(ru.ru_stime)) / n, ms(ru.ru_utime) / n, ru.ru_minflt / n);
  return 0;
}
