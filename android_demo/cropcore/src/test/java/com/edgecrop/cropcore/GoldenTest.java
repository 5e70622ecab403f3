package com.edgecrop.cropcore;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.BeforeClass;
import org.junit.Test;

/** The Java core must find exactly the boxes the Python SDK found (golden.json, from tests/golden_vectors.py). */
public class GoldenTest {
    private static Map<String, Object> golden;

    @BeforeClass
    @SuppressWarnings("unchecked")
    public static void load() throws Exception {
        try (InputStream in = GoldenTest.class.getResourceAsStream("/golden.json")) {
            golden = (Map<String, Object>) Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) {
        return (List<Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> obj(Object o) {
        return (Map<String, Object>) o;
    }

    private static double num(Object o) {
        return (Double) o;
    }

    private static int integer(Object o) {
        return (int) num(o);
    }

    @Test
    public void searchFindsTheSameBoxesAsPython() {
        Map<String, Object> maps = obj(golden.get("maps"));
        List<Object> cases = list(golden.get("search"));
        assertTrue("golden file has search cases", cases.size() >= 50);
        int crops = 0;
        for (Object c : cases) {
            Map<String, Object> k = obj(c);
            List<Object> rows = list(maps.get((String) k.get("map")));
            int h = rows.size(), w = list(rows.get(0)).size();
            double[] map = new double[h * w];
            for (int i = 0; i < h; i++) for (int j = 0; j < w; j++) map[i * w + j] = num(list(rows.get(i)).get(j));
            Map<String, Object> o = obj(k.get("options"));
            SearchOptions opt = new SearchOptions();
            opt.policy = Policy.parse((String) o.get("policy"));
            opt.minScale = num(o.get("min_scale"));
            opt.scaleSteps = integer(o.get("scale_steps"));
            opt.areaCost = num(o.get("area_cost"));
            opt.topK = integer(o.get("top_k"));
            opt.nmsIou = num(o.get("nms_iou"));
            List<Object> boosts = list(o.get("boosts"));
            opt.boosts = new Boost[boosts.size()];
            for (int b = 0; b < boosts.size(); b++) {
                List<Object> v = list(boosts.get(b));
                opt.boosts[b] = new Boost(num(v.get(0)), num(v.get(1)), num(v.get(2)), num(v.get(3)), num(v.get(4)));
            }
            List<Object> labels = list(k.get("labels")), ratios = list(k.get("ratios"));
            AspectRatio[] aspects = new AspectRatio[labels.size()];
            for (int r = 0; r < aspects.length; r++) {
                aspects[r] = AspectRatio.parse((String) labels.get(r));
                assertEquals(num(ratios.get(r)), aspects[r].value(), 1e-15);
            }
            List<Crop> found = CropSearch.findCrops(map, h, w, integer(k.get("width")), integer(k.get("height")), aspects, opt);
            List<Object> expected = list(k.get("crops"));
            String name = (String) k.get("name");
            assertEquals(name + ": number of crops", expected.size(), found.size());
            for (int n = 0; n < expected.size(); n++) {
                List<Object> e = list(expected.get(n));
                Crop f = found.get(n);
                Box want = new Box(integer(e.get(1)), integer(e.get(2)), integer(e.get(3)), integer(e.get(4)));
                assertEquals(name + " crop " + n + " aspect", e.get(0), f.aspect.label());
                assertEquals(name + " crop " + n + " (" + f.aspect.label() + ")", want, f.box);
                assertEquals(name + " crop " + n + " score", num(e.get(5)), f.score, 1e-9);
                assertEquals(name + " score parts", f.score, f.modelMass + f.boostMass - f.areaCost, 1e-12);
                assertEquals(name + " crop " + n + " rank", integer(e.get(6)), f.rank);
                crops++;
            }
        }
        assertTrue(crops > 300);
    }

    @Test
    public void letterboxLayoutMatchesPython() {
        for (Object c : list(golden.get("layout"))) {
            Map<String, Object> k = obj(c);
            List<Object> s = list(k.get("spec")), img = list(k.get("image"));
            Preprocess.InputSpec spec = new Preprocess.InputSpec(
                    integer(s.get(0)), integer(s.get(1)), integer(s.get(2)), integer(s.get(3)), (String) s.get(4));
            Preprocess.Layout place = Preprocess.layout(integer(img.get(0)), integer(img.get(1)), spec);
            String name = "layout " + s + " " + img;
            assertArrayEquals(name, ints(k.get("content")), place.content);
            assertArrayEquals(name, ints(k.get("cells")), place.cells);
        }
    }

    @Test
    public void inputTableMatchesPython() {
        for (Object c : list(golden.get("lut"))) {
            Map<String, Object> k = obj(c);
            byte[][] lut = Preprocess.inputTable(
                    doubles(k.get("mean")), doubles(k.get("std")), num(k.get("scale")), integer(k.get("zero_point")));
            List<Object> want = list(k.get("lut"));
            for (int ch = 0; ch < 3; ch++) {
                int[] row = ints(want.get(ch));
                for (int p = 0; p < 256; p++) assertEquals("channel " + ch + " pixel " + p, row[p], lut[ch][p]);
            }
        }
    }

    @Test
    public void dequantisationAndNormalisationMatchPython() {
        for (Object c : list(golden.get("output"))) {
            Map<String, Object> k = obj(c);
            int[] q = ints(k.get("q"));
            byte[] qb = new byte[q.length];
            for (int i = 0; i < q.length; i++) qb[i] = (byte) q[i];
            float scale = (float) num(k.get("scale"));
            int zeroPoint = integer(k.get("zero_point"));
            int[] shape = ints(k.get("shape"));
            float[] deq = Saliency.dequantize(qb, scale, zeroPoint);
            if (k.get("q_mirror") != null) { // the card's flip average, with the mirrored input's raw map
                int[] m = ints(k.get("q_mirror"));
                byte[] mb = new byte[m.length];
                for (int i = 0; i < m.length; i++) mb[i] = (byte) m[i];
                deq = Saliency.flipAverage(deq, Saliency.dequantize(mb, scale, zeroPoint), shape[0], shape[1]);
            }
            double[] wantDeq = doubles(k.get("dequantized")), wantProb = doubles(k.get("probability"));
            double[] asDouble = new double[deq.length];
            for (int i = 0; i < deq.length; i++) {
                assertEquals("dequantised " + i, (float) wantDeq[i], deq[i], 0f);
                asDouble[i] = deq[i];
            }
            ModelCard card = ModelCard.fromJson((String) k.get("card"));
            assertEquals(k.get("q_mirror") != null, card.output.flipAverage);
            double[] prob = Saliency.postprocess(asDouble, shape[0], shape[1], card);
            for (int i = 0; i < prob.length; i++) assertEquals("probability " + i, wantProb[i], prob[i], 1e-6 * wantProb[i] + 1e-12);
        }
    }

    /** The card round trip: written by the converters into the .tflite, read here from the file's own bytes. */
    @Test
    public void bundledModelCardsReadFromTheirFiles() throws Exception {
        Map<String, Object> bundled = obj(obj(golden.get("cards")).get("bundled"));
        assertTrue("golden file names the bundled models", bundled.size() >= 1);
        for (Map.Entry<String, Object> e : bundled.entrySet()) {
            byte[] model;
            try (InputStream in = GoldenTest.class.getResourceAsStream("/models/" + e.getKey())) {
                assertTrue("model file " + e.getKey() + " is on the test class path", in != null);
                model = in.readAllBytes();
            }
            ModelCard card = ModelCard.fromModel(model, e.getKey());
            Map<String, Object> want = obj(e.getValue());
            assertEquals(want.get("name"), card.name);
            assertEquals(want.get("resize"), card.input.resize);
            assertArrayEquals(doubles(want.get("mean")), card.input.mean, 0);
            assertArrayEquals(doubles(want.get("std")), card.input.std, 0);
            assertEquals(want.get("kind"), card.output.kind);
            assertEquals(num(want.get("temperature")), card.output.temperature, 0);
            Object prior = want.get("centre_prior");
            if (prior == null) {
                assertTrue(card.output.centrePrior == null);
            } else {
                assertEquals(num(list(prior).get(0)), card.output.centrePrior.weight, 0);
                assertEquals(num(list(prior).get(1)), card.output.centrePrior.sigma, 0);
                assertEquals(num(list(prior).get(2)), card.output.centrePrior.confidence, 0);
            }
            assertEquals(want.get("flip_average"), card.output.flipAverage);
            Object policy = want.get("recommended_policy");
            assertEquals(policy, card.recommendedPolicy == null ? null : card.recommendedPolicy.value);
        }
    }

    @Test
    public void badCardsAreRefusedAsInPython() {
        for (Object text : list(obj(golden.get("cards")).get("bad"))) {
            try {
                ModelCard.fromJson((String) text);
                throw new AssertionError("accepted a bad card: " + text);
            } catch (IllegalArgumentException expected) {
                assertTrue(expected.getMessage(), expected.getMessage().startsWith("JSON") || expected.getMessage().startsWith("model card"));
            }
        }
    }

    private static int[] ints(Object o) {
        List<Object> l = list(o);
        int[] out = new int[l.size()];
        for (int i = 0; i < out.length; i++) out[i] = integer(l.get(i));
        return out;
    }

    private static double[] doubles(Object o) {
        List<Object> l = list(o);
        double[] out = new double[l.size()];
        for (int i = 0; i < out.length; i++) out[i] = num(l.get(i));
        return out;
    }
}
