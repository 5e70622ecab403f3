package com.edgecrop.cropcore;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * The crop search of edgecrop.search, line for line: a summed-area table read by bilinear
 * interpolation (exact for a map of constant cells), window starts only where an edge crosses a cell
 * boundary plus the ends and the centre (which contain the best integer start), ties within 1e-9 to the
 * window closest to the centre, then smaller y, then smaller x. Maps are row-major h x w doubles.
 */
public final class CropSearch {
    public static final double TIE_TOLERANCE = 1e-9;

    private final double[] sat; // (h + 1) x (w + 1)
    private final int h, w, width, height;

    /** A search over a (boosted, normalised) map covering a width x height image. */
    public CropSearch(double[] map, int h, int w, int width, int height) {
        if (map.length != h * w) throw new IllegalArgumentException("map is not h x w");
        this.h = h;
        this.w = w;
        this.width = width;
        this.height = height;
        this.sat = new double[(h + 1) * (w + 1)];
        for (int i = 0; i < h; i++) {
            double row = 0;
            for (int j = 0; j < w; j++) {
                row += map[i * w + j];
                sat[(i + 1) * (w + 1) + j + 1] = sat[i * (w + 1) + j + 1] + row;
            }
        }
    }

    private double at(int i, int j) {
        return sat[i * (w + 1) + j];
    }

    private double integral(double u, double v) {
        int j = Math.min((int) u, w - 1);
        int i = Math.min((int) v, h - 1);
        double fu = u - j, fv = v - i;
        double top = at(i, j) * (1 - fu) + at(i, j + 1) * fu;
        double bottom = at(i + 1, j) * (1 - fu) + at(i + 1, j + 1) * fu;
        return top * (1 - fv) + bottom * fv;
    }

    /** Saliency mass of the pixel window (x, y, cw, ch). */
    public double windowMass(int x, int y, int cw, int ch) {
        double sx = (double) w / width, sy = (double) h / height;
        double u0 = x * sx, u1 = (x + cw) * sx, v0 = y * sy, v1 = (y + ch) * sy;
        return integral(u1, v1) - integral(u0, v1) - integral(u1, v0) + integral(u0, v0);
    }

    /** Integer window starts that contain the best one, ascending. */
    static long[] candidates(int length, int size, int cells) {
        int top = length - size;
        TreeSet<Long> out = new TreeSet<>();
        for (int k = 0; k <= cells; k++) {
            double b = (double) ((long) k * length) / cells;
            for (double p : new double[] {Math.floor(b), Math.ceil(b), Math.floor(b - size), Math.ceil(b - size)}) {
                if (0 <= p && p <= top) out.add((long) p);
            }
        }
        out.add(0L);
        out.add((long) top);
        out.add((long) Math.floorDiv(top, 2));
        out.add((long) Math.floorDiv(top + 1, 2));
        long[] r = new long[out.size()];
        int n = 0;
        for (long v : out) r[n++] = v;
        return r;
    }

    /** One scored window start. */
    static final class Scored {
        final double score;
        final long x, y;
        final int cw, ch;

        Scored(double score, long x, long y, int cw, int ch) {
            this.score = score;
            this.x = x;
            this.y = y;
            this.cw = cw;
            this.ch = ch;
        }

        Box box() {
            return new Box((int) x, (int) y, cw, ch);
        }
    }

    private List<Scored> scoreGrid(int cw, int ch, double areaCost) {
        long[] xs = candidates(width, cw, w), ys = candidates(height, ch, h);
        double penalty = areaCost * ((double) cw * ch) / ((double) width * height);
        List<Scored> out = new ArrayList<>(xs.length * ys.length);
        for (long y : ys) for (long x : xs) out.add(new Scored(windowMass((int) x, (int) y, cw, ch) - penalty, x, y, cw, ch));
        return out;
    }

    /** Best start of a cw x ch window: {x, y} and its score, ties broken as documented. */
    Scored bestWindow(int cw, int ch, double areaCost) {
        Scored best = null;
        long bestDist = 0;
        for (Scored s : scoreGrid(cw, ch, areaCost)) {
            long dist = sq(2 * s.x + cw - width) + sq(2 * s.y + ch - height);
            if (best == null || better(s, dist, best, bestDist)) {
                best = s;
                bestDist = dist;
            }
        }
        return best;
    }

    private static long sq(long v) {
        return v * v;
    }

    private static boolean better(Scored s, long dist, Scored b, long bestDist) {
        if (s.score > b.score + TIE_TOLERANCE) return true;
        if (s.score < b.score - TIE_TOLERANCE) return false;
        if (dist != bestDist) return dist < bestDist;
        if (s.y != b.y) return s.y < b.y;
        return s.x < b.x;
    }

    /** np.linspace(1, minScale, max(2, steps)), or {1} when minScale >= 1. */
    static double[] scales(double minScale, int steps) {
        if (minScale >= 1.0) return new double[] {1.0};
        int n = Math.max(2, steps);
        double step = (minScale - 1.0) / (n - 1);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) out[i] = i * step + 1.0;
        out[n - 1] = minScale;
        return out;
    }

    /** Best windows of one aspect ratio (width / height): top-k by score with non-maximum suppression. */
    public List<Scored> search(double ratio, SearchOptions o) {
        double[] scales = scales(o.minScale, o.scaleSteps);
        Scored best = null;
        for (double s : scales) {
            int[] size = Geometry.largestWindow(width, height, ratio, s);
            Scored b = bestWindow(size[0], size[1], o.areaCost);
            if (best == null || b.score > best.score + TIE_TOLERANCE) best = b;
        }
        List<Scored> chosen = new ArrayList<>();
        chosen.add(best);
        if (o.topK == 1) return chosen;
        List<Scored> pool = new ArrayList<>();
        for (double s : scales) {
            int[] size = Geometry.largestWindow(width, height, ratio, s);
            pool.addAll(scoreGrid(size[0], size[1], o.areaCost));
        }
        // Python sorts (-score, y, x, cw, ch) tuples ascending
        pool.sort((a, b) -> {
            int c = Double.compare(-a.score, -b.score);
            if (c != 0) return c;
            if (a.y != b.y) return Long.compare(a.y, b.y);
            if (a.x != b.x) return Long.compare(a.x, b.x);
            if (a.cw != b.cw) return Integer.compare(a.cw, b.cw);
            return Integer.compare(a.ch, b.ch);
        });
        for (Scored s : pool) {
            Box box = s.box();
            boolean keep = true;
            for (Scored c : chosen) keep &= box.iou(c.box()) < o.nmsIou;
            if (keep) {
                chosen.add(s);
                if (chosen.size() == o.topK) break;
            }
        }
        return chosen;
    }

    /** Centre (image pixels) of the first cell, row-major, holding the map's maximum. */
    public static double[] mostSalientPoint(double[] map, int h, int w, int width, int height) {
        int best = 0;
        for (int k = 1; k < map.length; k++) if (map[k] > map[best]) best = k;
        int i = best / w, j = best % w;
        return new double[] {(j + 0.5) * width / w, (i + 0.5) * height / h};
    }

    /** Twitter's policy: the largest window of the ratio centred on a point, shifted inside the image. */
    public static Box centredWindow(double cx, double cy, int width, int height, double ratio) {
        int[] size = Geometry.largestWindow(width, height, ratio, 1.0);
        int x = Math.min(Math.max((int) Math.floor(cx - size[0] / 2.0 + 0.5), 0), width - size[0]);
        int y = Math.min(Math.max((int) Math.floor(cy - size[1] / 2.0 + 0.5), 0), height - size[1]);
        return new Box(x, y, size[0], size[1]);
    }

    /** The whole search stage, as edgecrop.search.find_crops: boosts, then each ratio by the policy. */
    public static List<Crop> findCrops(
            double[] saliency, int h, int w, int width, int height, AspectRatio[] aspects, SearchOptions o) {
        o.validate();
        for (Boost b : o.boosts) b.checkInside(width, height);
        double[][] maps = Boost.boostedMap(saliency, h, w, width, height, o.boosts);
        CropSearch search = new CropSearch(maps[0], h, w, width, height);
        CropSearch model = new CropSearch(maps[1], h, w, width, height);
        List<Crop> crops = new ArrayList<>();
        for (AspectRatio aspect : aspects) {
            double ratio = aspect.value();
            if (o.policy == Policy.SALIENCY) {
                List<Scored> found = search.search(ratio, o);
                for (int rank = 0; rank < found.size(); rank++)
                    crops.add(crop(aspect, found.get(rank).box(), found.get(rank).score, rank, search, model));
                continue;
            }
            Box box;
            if (o.policy == Policy.TWITTER) {
                double[] p = mostSalientPoint(maps[0], h, w, width, height);
                box = centredWindow(p[0], p[1], width, height, ratio);
            } else {
                box = centredWindow(width / 2.0, height / 2.0, width, height, ratio);
            }
            crops.add(crop(aspect, box, search.windowMass(box.x, box.y, box.width, box.height), 0, search, model));
        }
        return crops;
    }

    private static Crop crop(AspectRatio aspect, Box box, double score, int rank, CropSearch all, CropSearch model) {
        double kept = all.windowMass(box.x, box.y, box.width, box.height);
        double keptModel = model.windowMass(box.x, box.y, box.width, box.height);
        return new Crop(aspect, box, score, keptModel, kept - keptModel, kept - score, rank);
    }
}
