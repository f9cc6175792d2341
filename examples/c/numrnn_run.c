/* numrnn_run.c: an example host for libnumrnn.so. It loads any model numrnn.save wrote and
 *   - for a LanguageModel: streams a prompt through numrnn_forward_tokens and samples text,
 *     one token at a time through the same state, printing as it goes;
 *   - for an RNN/LSTM/GRU layer: reads feature rows (one time step per line, input_size numbers)
 *     and prints the output rows that numrnn_forward gives for them (batch 1).
 * It is a demonstration of the API, not a tool with every option of `numrnn generate`.
 *
 *   numrnn-run MODEL [--device cpu|cuda] [--prompt TEXT] [--length N] [--temperature F] [--top-p P]
 *              [--seed N]
 * --temperature 0 is greedy (always the likeliest token); --top-p P < 1 samples from the nucleus,
 * the fewest likeliest tokens whose probability adds up to >= P: the same rules as `numrnn generate`
 * (python/numrnn/generate.py), so greedy text is the same here and there.
 *   numrnn-run MODEL [--device cpu|cuda] [--input FILE]      (default input: stdin)
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numrnn.h"

#define TOKEN_BYTES 8

static int die(const char *what)
{
    fprintf(stderr, "numrnn-run: %s (%s)\n", what, numrnn_last_error());
    return 1;
}

/* number and count read all of s: a flag's value that is not a number (--length ten,
 * --temperature hot) is refused rather than read as 0, which atof/atol would do (and 0 means
 * greedy or nothing) */
static int number(const char *flag, const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno || isnan(*out)) {
        fprintf(stderr, "numrnn-run: %s needs a number, got '%s'\n", flag, s);
        return 0;
    }
    return 1;
}

static int count(const char *flag, const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (end == s || *end || errno || strchr(s, '-') || *out > max) {
        fprintf(stderr, "numrnn-run: %s needs a whole number from 0 to %llu, got '%s'\n", flag, max, s);
        return 0;
    }
    return 1;
}

/* xorshift64*: a small, seeded generator, so a given seed gives the same text */
static double uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

struct choice {
    double weight; /* unnormalised probability */
    int32_t token;
};

/* likeliest first; equal weights by token id, as numpy's stable argsort orders them */
static int likeliest_first(const void *a, const void *b)
{
    const struct choice *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight < y->weight ? 1 : -1;
    return x->token < y->token ? -1 : 1;
}

/* a token drawn from softmax(logits / temperature), restricted to the nucleus when top_p < 1;
 * temperature 0: the argmax (the first one on a tie). choices: room for V entries. */
static int32_t sample(const float *logits, int64_t V, double temperature, double top_p,
                      struct choice *choices, uint64_t *rng)
{
    int64_t best = 0, kept = V;
    double total = 0, mass = 0, r;
    for (int64_t v = 1; v < V; v++)
        best = logits[v] > logits[best] ? v : best;
    if (temperature == 0)
        return (int32_t)best;
    for (int64_t v = 0; v < V; v++) {
        choices[v].weight = exp((logits[v] - logits[best]) / temperature);
        choices[v].token = (int32_t)v;
        total += choices[v].weight;
    }
    if (top_p < 1) {
        qsort(choices, V, sizeof *choices, likeliest_first);
        for (kept = 0; kept < V && mass < top_p * total; kept++)
            mass += choices[kept].weight;
        total = mass;
    }
    r = uniform(rng) * total;
    for (int64_t i = 0; i < kept; i++) {
        r -= choices[i].weight;
        if (r <= 0)
            return choices[i].token;
    }
    return choices[kept - 1].token;
}

/* prompt text -> token ids, longest matching token text first; -1 and a message if some text
 * is not in the vocabulary */
static int64_t encode(const char *text, char (*vocab)[TOKEN_BYTES], int64_t V, int32_t *ids)
{
    int64_t n = 0;
    while (*text) {
        int32_t best = -1;
        size_t best_len = 0;
        for (int64_t v = 0; v < V; v++) {
            size_t len = strlen(vocab[v]);
            if (len > best_len && strncmp(text, vocab[v], len) == 0) {
                best = (int32_t)v;
                best_len = len;
            }
        }
        if (best < 0) {
            fprintf(stderr, "numrnn-run: the prompt's character '%.*s' (byte 0x%02x) is not in the "
                    "model's vocabulary\n", (*text & 0x80) ? 4 : 1, text, (unsigned char)*text);
            return -1;
        }
        ids[n++] = best;
        text += best_len;
    }
    return n;
}

static int generate(numrnn_model *m, int64_t V, const char *prompt, long length, double temperature,
                    double top_p, uint64_t seed)
{
    char (*vocab)[TOKEN_BYTES] = malloc(V * TOKEN_BYTES);
    struct choice *choices = malloc(V * sizeof *choices);
    numrnn_state *state = NULL;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (int64_t v = 0; v < V; v++)
        if (numrnn_token_text(m, (int32_t)v, vocab[v], TOKEN_BYTES))
            return die("reading the vocabulary");
    if (!prompt) { /* like `numrnn generate`: a newline if the vocabulary has one, else token 0 */
        prompt = vocab[0];
        for (int64_t v = 0; v < V; v++)
            if (!strcmp(vocab[v], "\n"))
                prompt = vocab[v];
    }
    int32_t *ids = malloc((strlen(prompt) + 1) * sizeof(int32_t));
    float *logits = malloc((strlen(prompt) + 1) * V * sizeof(float));
    int64_t T = encode(prompt, vocab, V, ids);
    if (T <= 0) {
        if (T == 0)
            fprintf(stderr, "numrnn-run: the prompt is empty\n");
        return 2;
    }
    if (numrnn_state_new(m, 1, &state))
        return die("cannot make a state");
    /* the prompt in one call; its last step's logits give the first new token */
    if (numrnn_forward_tokens(m, state, ids, T, 1, logits, T * V))
        return die("generation failed");
    fputs(prompt, stdout);
    for (long i = 0; i < length; i++) {
        int32_t next = sample(logits + (T - 1) * V, V, temperature, top_p, choices, &rng);
        fputs(vocab[next], stdout);
        fflush(stdout);
        T = 1;
        if (numrnn_forward_tokens(m, state, &next, 1, 1, logits, V))
            return die("generation failed");
    }
    putchar('\n');
    numrnn_state_free(state);
    free(logits);
    free(ids);
    free(vocab);
    free(choices);
    return 0;
}

static int features(numrnn_model *m, int64_t I, int64_t O, FILE *in)
{
    int64_t T = 0, cap = 64, n = 0;
    float *x = malloc(cap * sizeof(float)), value;
    while (fscanf(in, "%f", &value) == 1) {
        if (n == cap)
            x = realloc(x, (cap *= 2) * sizeof(float));
        x[n++] = value;
    }
    if (n == 0 || n % I) {
        fprintf(stderr, "numrnn-run: expected rows of %ld numbers (input_size), got %ld numbers\n",
                (long)I, (long)n);
        return 2;
    }
    T = n / I;
    float *y = malloc(T * O * sizeof(float));
    if (numrnn_forward(m, NULL, x, T, 1, y, T * O))
        return die("the forward pass failed");
    for (int64_t t = 0; t < T; t++)
        for (int64_t o = 0; o < O; o++)
            printf("%.6g%c", y[t * O + o], o + 1 < O ? ' ' : '\n');
    free(y);
    free(x);
    return 0;
}

int main(int argc, char **argv)
{
    const char *device = "cpu", *prompt = NULL, *input = NULL;
    long length = 200;
    double temperature = 0.8, top_p = 1.0;
    unsigned long long whole;
    uint64_t seed = 0;
    int64_t I, O, V;
    numrnn_model *m = NULL;
    int rc;

    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: numrnn-run MODEL [--device cpu|cuda] [--prompt TEXT] [--length N] "
                        "[--temperature F] [--top-p P] [--seed N] [--input FILE]\n");
        return 2;
    }
    for (int i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            fprintf(stderr, "numrnn-run: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--prompt"))
            prompt = argv[i + 1];
        else if (!strcmp(argv[i], "--length")) {
            if (!count(argv[i], argv[i + 1], LONG_MAX, &whole))
                return 2;
            length = (long)whole;
        } else if (!strcmp(argv[i], "--temperature")) {
            if (!number(argv[i], argv[i + 1], &temperature))
                return 2;
        } else if (!strcmp(argv[i], "--top-p")) {
            if (!number(argv[i], argv[i + 1], &top_p))
                return 2;
        } else if (!strcmp(argv[i], "--seed")) {
            if (!count(argv[i], argv[i + 1], ULLONG_MAX, &whole))
                return 2;
            seed = whole;
        } else if (!strcmp(argv[i], "--input"))
            input = argv[i + 1];
        else {
            fprintf(stderr, "numrnn-run: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!(temperature >= 0) || !(top_p > 0 && top_p <= 1) || length < 0) {
        fprintf(stderr, "numrnn-run: --temperature must be >= 0 (0 = greedy), --top-p in (0, 1] "
                        "and --length >= 0\n");
        return 2;
    }
    if (numrnn_model_open(argv[1], device, &m))
        return die("cannot open the model");
    if (numrnn_model_sizes(m, &I, &O, &V))
        return die("cannot read the model's sizes");
    if ((V > 0 && input) || (V == 0 && prompt)) { /* a flag this kind of model would ignore */
        fprintf(stderr, V > 0 ? "numrnn-run: --input is for a layer's feature rows; %s is a LanguageModel, "
                                "which starts from --prompt\n"
                              : "numrnn-run: --prompt is for a LanguageModel; %s is a layer, which reads "
                                "feature rows from --input or stdin\n", argv[1]);
        numrnn_model_close(m);
        return 2;
    }
    if (V > 0) {
        rc = generate(m, V, prompt, length, temperature, top_p, seed);
    } else {
        FILE *in = input ? fopen(input, "r") : stdin;
        if (!in) {
            fprintf(stderr, "numrnn-run: cannot open %s\n", input);
            return 2;
        }
        rc = features(m, I, O, in);
    }
    numrnn_model_close(m);
    return rc;
}
