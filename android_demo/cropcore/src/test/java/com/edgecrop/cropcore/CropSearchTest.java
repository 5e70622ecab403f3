package com.edgecrop.cropcore;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.Test;

/** Properties of the search that hold for any map: checked against a brute force over every start. */
public class CropSearchTest {
    @Test
    public void bestWindowIsAsGoodAsEveryIntegerPosition() {
        Random rng = new Random(1);
        for (int trial = 0; trial < 60; trial++) {
            int h = 1 + rng.nextInt(9), w = 1 + rng.nextInt(9);
            int width = 5 + rng.nextInt(120), height = 5 + rng.nextInt(120);
            double[] map = new double[h * w];
            for (int i = 0; i < map.length; i++) map[i] = rng.nextDouble();
            CropSearch s = new CropSearch(Boost.boostedMap(map, h, w, width, height, new Boost[0])[0], h, w, width, height);
            double ratio = 0.3 + 3 * rng.nextDouble();
            int[] size = Geometry.largestWindow(width, height, ratio, 1.0);
            CropSearch.Scored best = s.bestWindow(size[0], size[1], 0.0);
            for (int y = 0; y + size[1] <= height; y++)
                for (int x = 0; x + size[0] <= width; x++)
                    assertTrue(s.windowMass(x, y, size[0], size[1]) <= best.score + CropSearch.TIE_TOLERANCE);
        }
    }

    @Test
    public void uniformMapGivesTheCentredWindow() {
        double[] map = new double[16];
        java.util.Arrays.fill(map, 1.0);
        List<Crop> crops = CropSearch.findCrops(map, 4, 4, 1000, 500, new AspectRatio[] {new AspectRatio(1, 1)}, new SearchOptions());
        assertEquals(new Box(250, 0, 500, 500), crops.get(0).box);
        assertEquals(0.5, crops.get(0).score, 1e-12);
    }

    @Test
    public void focusPointPullsTheCrop() {
        double[] map = new double[64];
        java.util.Arrays.fill(map, 1.0);
        SearchOptions o = new SearchOptions();
        o.boosts = new Boost[] {Boost.point(950, 250, 3.0)};
        Crop c = CropSearch.findCrops(map, 8, 8, 1000, 500, new AspectRatio[] {new AspectRatio(1, 1)}, o).get(0);
        assertEquals(500, c.box.x);
    }

    @Test(expected = IllegalArgumentException.class)
    public void badOptionsAreRefused() {
        SearchOptions o = new SearchOptions();
        o.minScale = 0;
        CropSearch.findCrops(new double[] {1}, 1, 1, 10, 10, new AspectRatio[] {new AspectRatio(1, 1)}, o);
    }
}
